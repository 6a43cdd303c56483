using System.Diagnostics;
using PeftDsl.Data;
using PeftDsl.Errors;
using PeftDsl.Runtime;
using PeftDsl.Tokenization;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftDsl.Training;

/// <summary>
/// The training loop (docs/design-training.md): micro-batches accumulate into one optimizer step, weighted by their
/// loss tokens; AdamW updates one flat buffer; evaluation, early stopping and atomic checkpoints on a schedule.
/// Randomness is derived from (seed, step) and the data order from (seed, epoch), so a resumed run is the
/// uninterrupted one.
/// </summary>
public sealed class Trainer
{
    private readonly LanguageModel model;
    private readonly TextTokenizer tokenizer;
    private readonly IReadOnlyList<TokenizedExample> train;
    private readonly IReadOnlyList<TokenizedExample>? eval;
    private readonly TrainerOptions options;
    private readonly string? checkpointDirectory;

    /// <param name="checkpointDirectory">Where checkpoints go (replaced atomically each time); null: none.</param>
    public Trainer(LanguageModel model, TextTokenizer tokenizer, IReadOnlyList<TokenizedExample> train,
        IReadOnlyList<TokenizedExample>? eval, TrainerOptions options, string? checkpointDirectory)
    {
        if (train.Count == 0) throw new PeftDslException("no training examples");
        this.model = model;
        this.tokenizer = tokenizer;
        this.train = train;
        this.eval = eval is { Count: > 0 } ? eval : null;
        this.options = options.Validate();
        this.checkpointDirectory = checkpointDirectory;
    }

    /// <summary>Raised on the training thread for each logged step (every <c>LogEvery</c> steps and the last), evaluation and checkpoint save.</summary>
    public event Action<TrainingEvent>? Progress;

    /// <summary>Optimizer steps in one epoch.</summary>
    public int StepsPerEpoch => (int)Math.Ceiling(Math.Ceiling((double)train.Count / options.BatchSize) / options.Accumulation);

    /// <summary>Optimizer steps the run takes: <c>MaxSteps</c>, or <c>Epochs</c> × <see cref="StepsPerEpoch"/>.</summary>
    public int TotalSteps => options.MaxSteps ?? options.Epochs * StepsPerEpoch;

    /// <param name="resumeFrom">A checkpoint folder whose adapter is already loaded into the model (trainable).</param>
    public TrainingResult Run(string? resumeFrom = null, CancellationToken cancel = default)
    {
        var device = model.parameters().First().device;
        using var flat = FlatParameters.Of(model);
        using var optimizer = new FlatAdamW(flat, weightDecay: options.WeightDecay);
        var schedule = new LearningRateSchedule(options.LearningRate, options.WarmupSteps, TotalSteps, options.Decay).Validate();
        var state = new TrainerState(0, 0, 0, null, 0, options.Seed, options.BatchSize, options.Accumulation, train.Count, TotalSteps)
        {
            Settings = options.Settings(),
        };
        if (resumeFrom is not null)
        {
            state = Compatible(TrainingCheckpoint.ReadState(resumeFrom), state, resumeFrom);
            TrainingCheckpoint.LoadOptimizer(resumeFrom, optimizer);
        }
        var lengths = train.Select(e => e.Length).ToList();
        EvalResult? last = null, best = null;
        var stop = "finished";
        model.train();
        while (state.Step < TotalSteps)
        {
            if (cancel.IsCancellationRequested)
            {
                // Stopped by the user: keep what was learned, so --resume continues from here.
                stop = "stopped";
                if (checkpointDirectory is not null)
                {
                    TrainingCheckpoint.Save(checkpointDirectory, model, optimizer, state);
                    Progress?.Invoke(new SaveEvent(state.Step, checkpointDirectory));
                }
                break;
            }
            var order = BatchOrder.Epoch(lengths, options.BatchSize, options.Seed, state.Epoch);
            var micro = order.Skip(state.BatchInEpoch).Take(options.Accumulation).ToList();
            var clock = Stopwatch.StartNew();
            var (loss, tokens, norm) = Step(micro, flat, device, state.Step);
            if (!double.IsFinite(loss)) throw new TrainingDivergedException(state.Step + 1, loss);
            var lr = schedule.At(state.Step);
            optimizer.Step(lr);
            var next = state.BatchInEpoch + micro.Count;
            state = next >= order.Count
                ? state with { Step = state.Step + 1, Epoch = state.Epoch + 1, BatchInEpoch = 0 }
                : state with { Step = state.Step + 1, BatchInEpoch = next };
            if (state.Step % options.LogEvery == 0 || state.Step == TotalSteps)
                Progress?.Invoke(new StepEvent(state.Step, TotalSteps, state.Epoch, loss, lr, tokens / clock.Elapsed.TotalSeconds, norm));

            var evaluate = eval is not null && (state.Step == TotalSteps || options.EvalEvery > 0 && state.Step % options.EvalEvery == 0);
            if (evaluate)
            {
                last = Evaluator.Run(model, tokenizer, eval!, options.BatchSize);
                // Against the best value in the state, so a resumed run remembers the evaluations before it;
                // a NaN or infinite evaluation is never the best.
                var value = last.Value(options.Metric);
                var improved = double.IsFinite(value) && (state.BestMetric is not { } bestSoFar ||
                                                          (options.Metric == EvalMetric.Loss ? value < bestSoFar : value > bestSoFar));
                if (improved) best = last;
                state = state with
                {
                    BestMetric = improved ? value : state.BestMetric,
                    EvalsWithoutImprovement = improved ? 0 : state.EvalsWithoutImprovement + 1,
                };
                Progress?.Invoke(new EvalEvent(state.Step, last, improved));
            }
            var save = checkpointDirectory is not null &&
                       (state.Step == TotalSteps || (options.SaveEvery > 0 ? state.Step % options.SaveEvery == 0 : evaluate));
            if (options.Patience > 0 && state.EvalsWithoutImprovement >= options.Patience)
            {
                stop = $"early stop: {options.Patience} evaluations without improvement";
                save = checkpointDirectory is not null;
            }
            if (save)
            {
                TrainingCheckpoint.Save(checkpointDirectory!, model, optimizer, state);
                Progress?.Invoke(new SaveEvent(state.Step, checkpointDirectory!));
            }
            if (stop != "finished") break;
        }
        model.eval();
        return new TrainingResult(state.Step, last, best, stop) { TotalSteps = TotalSteps };
    }

    /// <summary>One optimizer step's forward and backward passes over its micro-batches. Returns the mean loss over
    /// loss tokens (one host read: also the NaN check), the tokens processed and the gradient norm.</summary>
    private (double Loss, long Tokens, double Norm) Step(List<int[]> micro, FlatParameters flat, Device device, int step)
    {
        // Dropout and anything random is a function of (seed, step): a resumed run draws what the first run drew.
        manual_seed(options.Seed * 1_000_003L + step);
        flat.ZeroGrad();
        using var scope = NewDisposeScope();
        var examples = micro.Select(indices => (IReadOnlyList<TokenizedExample>)indices.Select(i => train[i]).ToList()).ToList();
        var loss = Backward(examples, device);
        var norm = flat.ClipGradNorm(options.ClipNorm);
        return (loss.item<float>(), examples.Sum(e => e.Sum(x => (long)x.Length)), norm.item<float>());
    }

    /// <summary>Accumulates the gradients of micro-batches, each weighted by its share of the loss tokens, so that k
    /// micro-batches give the gradient of one batch of all their examples. Returns the mean loss (a tensor).</summary>
    internal Tensor Backward(IReadOnlyList<IReadOnlyList<TokenizedExample>> microBatches, Device device)
    {
        var batches = microBatches.Select(m => MakeBatch(m, device)).ToList();
        var lossTokens = batches.Sum(b => b.LossTokens);
        var total = zeros(1, device: device);
        foreach (var batch in batches)
        {
            if (batch.LossTokens == 0) continue;
            var loss = Loss(model, batch) * ((double)batch.LossTokens / lossTokens);
            loss.backward();
            total.add_(loss.detach());
            batch.Dispose();
        }
        if (options.TFewLosses)
        {
            // T-Few: L = L_LM + L_UL + L_LN, the two choice losses averaged over the step's examples.
            var chosen = microBatches.SelectMany(m => m).Where(e => e.Choices is not null).ToList();
            foreach (var e in chosen)
            {
                using var scores = MultipleChoice.Score(model, e.Prompt, e.Choices!);
                var extra = (MultipleChoice.LengthNormalizedLoss(scores, e.Label) + MultipleChoice.UnlikelihoodLoss(scores, e.Label)) / chosen.Count;
                extra.backward();
                total.add_(extra.detach());
            }
        }
        return total;
    }

    private Batch MakeBatch(IReadOnlyList<TokenizedExample> examples, Device device) => model is Seq2SeqLanguageModel seq2seq
        ? Batch.Seq2Seq(examples, seq2seq.DecoderStartTokenId, device)
        : Batch.Causal(examples, options.AnswerOnlyLoss, device, firstIsTarget: model.Prompts.PrependsTo(examples));

    /// <summary>The mean loss of a batch over its loss tokens.</summary>
    internal static Tensor Loss(LanguageModel model, Batch batch, IReadOnlyList<string>? adapterNames = null) => model switch
    {
        CausalLanguageModel causal => causal.Forward(batch.InputIds, batch.AttentionMask, batch.Labels, adapterNames).Loss!,
        Seq2SeqLanguageModel seq2seq => seq2seq.Forward(batch.InputIds, batch.AttentionMask, batch.DecoderInputIds!, batch.Labels, adapterNames).Loss!,
        _ => throw new InvalidOperationException(),
    };

    private static TrainerState Compatible(TrainerState saved, TrainerState now, string directory)
    {
        void Same(int a, int b, string what)
        {
            if (a != b) throw new PeftDslException($"{directory}: the checkpoint was made with {what} {a}, this run has {b}; resume with the same settings");
        }
        Same(saved.Seed, now.Seed, "--seed");
        Same(saved.BatchSize, now.BatchSize, "--batch");
        Same(saved.Accumulation, now.Accumulation, "--accumulate");
        Same(saved.Examples, now.Examples, "training examples:");
        Same(saved.TotalSteps, now.TotalSteps, "total steps (--steps, or --epochs over the data):");
        SameSettings(saved.Settings, now.Settings, directory);
        return saved with { Settings = now.Settings };
    }

    /// <summary>Refuses a resume whose settings differ from the checkpoint's, before anything is built from them (a
    /// method's tensors, the data at another length).</summary>
    public static void CheckResumeSettings(string directory, TrainerOptions options) =>
        SameSettings(TrainingCheckpoint.ReadState(directory).Settings, options.Settings(), directory);

    private static void SameSettings(IReadOnlyDictionary<string, string>? before, IReadOnlyDictionary<string, string>? after, string directory)
    {
        // Checkpoints from before settings were recorded carry none; those are resumed on the other checks.
        if (before is null || after is null) return;
        var changed = before.Keys.Union(after.Keys).Order(StringComparer.Ordinal)
            .Where(k => before.GetValueOrDefault(k) != after.GetValueOrDefault(k))
            .Select(k => $"{k} {before.GetValueOrDefault(k) ?? "(unset)"} → {after.GetValueOrDefault(k) ?? "(unset)"}")
            .ToList();
        if (changed.Count > 0)
            throw new PeftDslException($"{directory}: this run's settings differ from the checkpoint's: {string.Join(", ", changed)}; resume with the same settings");
    }
}
