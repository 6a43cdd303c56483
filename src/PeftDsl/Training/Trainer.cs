using System.Diagnostics;
using PeftDsl.Data;
using PeftDsl.Distributed;
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
/// uninterrupted one. With several ranks (docs/distributed.md) each micro-batch is split between them, the flat
/// gradient is summed over ranks once per optimizer step, evaluation is split between the ranks, and rank 0 alone
/// saves and reports.
/// </summary>
public sealed class Trainer
{
    private readonly LanguageModel model;
    private readonly TextTokenizer tokenizer;
    private readonly IReadOnlyList<TokenizedExample> train;
    private readonly IReadOnlyList<TokenizedExample>? eval;
    private readonly TrainerOptions options;
    private readonly string? checkpointDirectory;
    private readonly ICommunicator ranks;

    /// <param name="checkpointDirectory">Where checkpoints go (replaced atomically each time); null: none. Only rank 0
    /// writes them.</param>
    /// <param name="communicator">The job's ranks; null: this process alone.</param>
    public Trainer(LanguageModel model, TextTokenizer tokenizer, IReadOnlyList<TokenizedExample> train,
        IReadOnlyList<TokenizedExample>? eval, TrainerOptions options, string? checkpointDirectory, ICommunicator? communicator = null)
    {
        if (train.Count == 0) throw new PeftDslException("no training examples");
        ranks = communicator ?? SingleProcess.Instance;
        if (ranks.Size > 1 && options.BatchSize < ranks.Size)
            throw new PeftDslException($"--batch {options.BatchSize} is smaller than the {ranks.Size} ranks: each rank takes a share of every " +
                                       "batch, so the batch needs at least one example per rank");
        if (ranks.Size > 1 && options.TFewLosses)
            throw new PeftDslException("--tfew is not yet computed across ranks: run it as one process");
        if (options.Packing && model is not CausalLanguageModel)
            throw new PeftDslException($"--packing is for decoder-only models; {model.ModelType} is an encoder-decoder");
        if (options.Packing && model.Prompts.Active is not null)
            throw new PeftDslException("--packing cannot be combined with prompt learning: virtual tokens or a prefix would belong to a packed row, not to each example");
        if (options.GradientCheckpointing && model.Prompts.Active is { } task && model.Prompts[task].Method == Peft.Prompts.PromptMethod.PrefixTuning)
            throw new PeftDslException("--gradient-checkpointing cannot be combined with prefix tuning: its keys and values reach every layer " +
                                       "through the KV cache, which a recomputed block would read twice");
        this.model = model;
        this.tokenizer = tokenizer;
        this.train = train;
        this.eval = eval is { Count: > 0 } ? eval : null;
        this.options = options.Validate();
        this.checkpointDirectory = checkpointDirectory;
    }

    /// <summary>Raised on rank 0's training thread for each logged step (every <c>LogEvery</c> steps and the last), evaluation and checkpoint save.</summary>
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
        var norms = WeightDecayRule.NormParameters(model);
        using var optimizer = new FlatAdamW(flat, weightDecay: options.WeightDecay,
            decayMask: options.WeightDecay == 0 ? null : flat.Mask(p => WeightDecayRule.Decays(p, norms)));
        if (ranks.Size > 1) RequireSameStart(flat);
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
        model.BaseDropout = options.BaseDropout;
        model.GradientCheckpointing = options.GradientCheckpointing;
        model.train();
        while (state.Step < TotalSteps)
        {
            if (StopRequested(cancel))
            {
                // Stopped by the user: keep what was learned, so --resume continues from here.
                stop = "stopped";
                Save(optimizer, state, flat);
                break;
            }
            var order = BatchOrder.Epoch(lengths, options.BatchSize, options.Seed, state.Epoch);
            var micro = order.Skip(state.BatchInEpoch).Take(options.Accumulation).ToList();
            var clock = Stopwatch.StartNew();
            var (loss, tokens, norm) = Step(micro.Select(Shard).ToList(), flat, device, state.Step);
            // A non-finite loss or gradient stops the run before the update, so nothing non-finite is ever applied.
            if (!double.IsFinite(loss)) throw new TrainingDivergedException(state.Step + 1, $"the training loss is {N(loss)}; stopped before the update");
            if (!double.IsFinite(norm)) throw new TrainingDivergedException(state.Step + 1, $"the gradient norm is {N(norm)}; stopped before the update");
            var lr = schedule.At(state.Step);
            optimizer.Step(lr);
            var next = state.BatchInEpoch + micro.Count;
            state = next >= order.Count
                ? state with { Step = state.Step + 1, Epoch = state.Epoch + 1, BatchInEpoch = 0 }
                : state with { Step = state.Step + 1, BatchInEpoch = next };
            if (ranks.Rank == 0 && (state.Step % options.LogEvery == 0 || state.Step == TotalSteps))
                Progress?.Invoke(new StepEvent(state.Step, TotalSteps, state.Epoch, loss, lr, tokens / clock.Elapsed.TotalSeconds, norm,
                    Runtime.ProcessMemory.PeakResidentBytes()));

            var evaluate = eval is not null && (state.Step == TotalSteps || options.EvalEvery > 0 && state.Step % options.EvalEvery == 0);
            if (evaluate)
            {
                // Each rank evaluates its share of the batches and all get the combined result, so that all make the
                // same early-stopping decision.
                last = Evaluator.Run(model, tokenizer, eval!, options.BatchSize, ranks: ranks);
                var value = last.Value(options.Metric);
                // Against the best value in the state, so a resumed run remembers the evaluations before it;
                // a NaN or infinite evaluation is never the best.
                var improved = double.IsFinite(value) && (state.BestMetric is not { } bestSoFar ||
                                                          (options.Metric == EvalMetric.Loss ? value < bestSoFar : value > bestSoFar));
                if (improved) best = last;
                state = state with
                {
                    BestMetric = improved ? value : state.BestMetric,
                    EvalsWithoutImprovement = improved ? 0 : state.EvalsWithoutImprovement + 1,
                };
                if (ranks.Rank == 0) Progress?.Invoke(new EvalEvent(state.Step, last, improved));
            }
            var save = checkpointDirectory is not null &&
                       (state.Step == TotalSteps || (options.SaveEvery > 0 ? state.Step % options.SaveEvery == 0 : evaluate));
            if (options.Patience > 0 && state.EvalsWithoutImprovement >= options.Patience)
            {
                stop = $"early stop: {options.Patience} evaluations without improvement";
                save = checkpointDirectory is not null;
            }
            if (save) Save(optimizer, state, flat);
            if (stop != "finished") break;
        }
        model.eval();
        return new TrainingResult(state.Step, last, best, stop) { TotalSteps = TotalSteps };
    }

    /// <summary>One optimizer step's forward and backward passes over its micro-batches (this rank's share of each).
    /// Returns the mean loss over the step's loss tokens and the tokens processed, both over all ranks (one host read:
    /// also the NaN check), and the gradient norm.</summary>
    private (double Loss, long Tokens, double Norm) Step(List<int[]> micro, FlatParameters flat, Device device, int step)
    {
        // Dropout and anything random is a function of (seed, step): a resumed run draws what the first run drew.
        manual_seed(options.Seed * 1_000_003L + step);
        flat.ZeroGrad();
        using var scope = NewDisposeScope();
        var examples = micro.Select(indices => (IReadOnlyList<TokenizedExample>)indices.Select(i => train[i]).ToList()).ToList();
        var loss = Backward(examples, device);
        // The step's mean loss and its tokens, over all ranks (the log reports the job's throughput). Summed before
        // the gradients: on GPUs that all-reduce is only queued (NCCL), and this one, on the host and watched for a
        // timeout, shows first that every rank finished its backward pass.
        var totals = new[] { (double)loss.item<float>(), examples.Sum(e => e.Sum(x => (double)x.Length)) };
        ranks.AllReduceSum(totals);
        // Every rank's gradient is its share of the step's mean: their sum is the step's gradient, the same on
        // every rank, so clipping and AdamW keep the adapters identical.
        ranks.AllReduceSum(flat.Grads);
        var norm = flat.ClipGradNorm(options.ClipNorm);
        return (totals[0], (long)totals[1], norm.item<float>());
    }

    /// <summary>Accumulates the gradients of micro-batches, each weighted by its share of the loss tokens, so that k
    /// micro-batches give the gradient of one batch of all their examples. With several ranks the shares are of the
    /// loss tokens of the step on all ranks. Returns the (share of the) mean loss (a tensor).</summary>
    internal Tensor Backward(IReadOnlyList<IReadOnlyList<TokenizedExample>> microBatches, Device device)
    {
        var batches = microBatches.Where(m => m.Count > 0).Select(m => MakeBatch(m, device)).ToList();
        var lossTokens = GlobalSum(batches.Sum(b => b.LossTokens));
        var total = zeros(1, device: device);
        foreach (var batch in batches)
        {
            // Each micro-batch's activations and outputs are freed before the next runs: in the step's scope they all
            // stayed alive until the step ended, so peak memory grew with --accumulate.
            using var micro = NewDisposeScope();
            using var owned = batch;
            if (batch.LossTokens == 0) continue;
            var loss = Loss(model, batch) * ((double)batch.LossTokens / lossTokens);
            Autograd.Backward(loss);
            total.add_(loss.detach());
        }
        if (options.TFewLosses)
        {
            // T-Few: L = L_LM + L_LN + L_UL, as r-three/t-few's EncoderDecoder.py sums them: L_LN averaged over the step's
            // examples, L_UL the sum over all their wrong choices' tokens divided by the number of those tokens.
            var chosen = microBatches.SelectMany(m => m).Where(e => e.Choices is not null).ToList();
            var wrongTokens = chosen.Sum(e => e.Choices!.Where((_, j) => j != e.Label).Sum(c => (long)c.Length));
            foreach (var e in chosen)
            {
                using var scores = MultipleChoice.Score(model, e.Prompt, e.Choices!);
                var (unlikely, _) = MultipleChoice.UnlikelihoodTerms(scores, e.Label);
                var extra = MultipleChoice.LengthNormalizedLoss(scores, e.Label) / chosen.Count + unlikely / wrongTokens;
                Autograd.Backward(extra);
                total.add_(extra.detach());
            }
        }
        return total;
    }

    /// <summary>This rank's share of a batch: every Size-th example from its rank on (all of it with one rank).</summary>
    private int[] Shard(int[] batch) => ranks.Size == 1 ? batch : batch.Where((_, i) => i % ranks.Size == ranks.Rank).ToArray();

    private static string N(double x) => x.ToString(System.Globalization.CultureInfo.InvariantCulture);

    private long GlobalSum(long value)
    {
        if (ranks.Size == 1) return value;
        var sum = new[] { (double)value };
        ranks.AllReduceSum(sum);
        return (long)sum[0];
    }

    /// <summary>The user's stop (a signal) is the job's: any rank's stops every rank after the same step.</summary>
    private bool StopRequested(CancellationToken cancel)
    {
        if (ranks.Size == 1) return cancel.IsCancellationRequested;
        var any = new[] { cancel.IsCancellationRequested ? 1.0 : 0.0 };
        ranks.AllReduceSum(any);
        return any[0] > 0;
    }

    private void Save(FlatAdamW optimizer, TrainerState state, FlatParameters flat)
    {
        if (checkpointDirectory is null) return;
        // An update from finite gradients can still overflow (a huge learning rate): such values are never saved, so
        // the last checkpoint stays one that loads. Every rank holds the same values and stops together.
        using (no_grad())
            if (!flat.Values.isfinite().all().item<bool>())
                throw new TrainingDivergedException(state.Step, "the update made trainable values NaN or infinite; they were not saved");
        if (ranks.Rank != 0) return;
        TrainingCheckpoint.Save(checkpointDirectory, model, optimizer, state);
        Progress?.Invoke(new SaveEvent(state.Step, checkpointDirectory));
    }

    /// <summary>Ranks that start from different bases or adapters would train different models and sum meaningless
    /// gradients: every rank compares checksums of its frozen base and its trainable buffer with rank 0's, and all
    /// refuse together if any differs.</summary>
    private void RequireSameStart(FlatParameters flat)
    {
        var mine = ModelChecksum.Of(model, flat, train, eval);
        var rankZero = (byte[])mine.Clone();
        ranks.Broadcast(rankZero);
        var differs = new double[ranks.Size];
        differs[ranks.Rank] = mine.AsSpan().SequenceEqual(rankZero) ? 0 : 1;
        ranks.AllReduceSum(differs);
        var bad = Enumerable.Range(0, ranks.Size).Where(r => differs[r] > 0).ToList();
        if (bad.Count > 0)
            throw new PeftDslException($"rank{(bad.Count > 1 ? "s" : "")} {string.Join(", ", bad)} of {ranks.Size} start{(bad.Count > 1 ? "" : "s")} from " +
                                       "another model or data than rank 0 (the checksums of the base weights, the trainable adapter and the " +
                                       "tokenized examples differ): every rank must load the same --model and data, and start from the same " +
                                       "seed or checkpoint");
    }

    private Batch MakeBatch(IReadOnlyList<TokenizedExample> examples, Device device) => model is Seq2SeqLanguageModel seq2seq
        ? Batch.Seq2Seq(examples, seq2seq.DecoderStartTokenId, device)
        : options.Packing ? Batch.CausalPacked(examples, options.AnswerOnlyLoss, device)
        : Batch.Causal(examples, options.AnswerOnlyLoss, device, firstIsTarget: model.Prompts.PrependsTo(examples));

    /// <summary>The mean loss of a batch over its loss tokens.</summary>
    internal static Tensor Loss(LanguageModel model, Batch batch, IReadOnlyList<string>? adapterNames = null) => model switch
    {
        // Chunked: the (B, T, V) logits never exist (ChunkedLoss); the loss and gradients are Forward's.
        CausalLanguageModel causal => causal.Loss(batch.InputIds, batch.AttentionMask, batch.Labels, adapterNames, batch.Packed),
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

    /// <summary>What a checkpoint that does not record a setting was trained with: the base model's dropout was not
    /// computed before <c>--base-dropout</c> existed.</summary>
    private static readonly Dictionary<string, string> SettingsBeforeTheyWereRecorded = new() { ["--base-dropout"] = "0", ["--packing"] = "no" };

    /// <summary>Refuses a resume whose settings differ from the checkpoint's, before anything is built from them (a
    /// method's tensors, the data at another length).</summary>
    public static void CheckResumeSettings(string directory, TrainerOptions options) =>
        SameSettings(TrainingCheckpoint.ReadState(directory).Settings, options.Settings(), directory);

    private static void SameSettings(IReadOnlyDictionary<string, string>? before, IReadOnlyDictionary<string, string>? after, string directory)
    {
        // Checkpoints from before settings were recorded carry none; those are resumed on the other checks.
        if (before is null || after is null) return;
        string? Before(string k) => before.GetValueOrDefault(k) ?? SettingsBeforeTheyWereRecorded.GetValueOrDefault(k);
        var changed = before.Keys.Union(after.Keys).Order(StringComparer.Ordinal)
            .Where(k => Before(k) != after.GetValueOrDefault(k))
            .Select(k => $"{k} {Before(k) ?? "(unset)"} → {after.GetValueOrDefault(k) ?? "(unset)"}")
            .ToList();
        if (changed.Count > 0)
            throw new PeftDslException($"{directory}: this run's settings differ from the checkpoint's: {string.Join(", ", changed)}; resume with the same settings");
    }
}
