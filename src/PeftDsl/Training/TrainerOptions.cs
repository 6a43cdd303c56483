using PeftDsl.Errors;

namespace PeftDsl.Training;

/// <summary>Which eval metric early stopping and "best" follow.</summary>
public enum EvalMetric
{
    /// <summary>Eval loss over answer tokens (lower is better).</summary>
    Loss,
    /// <summary>Exact match of greedy answers (higher is better).</summary>
    ExactMatch,
}

/// <summary>The knobs of a training run; every one is checked, naming its command-line option.</summary>
public sealed record TrainerOptions
{
    /// <summary>Optimizer steps to take; null runs <see cref="Epochs"/> epochs.</summary>
    public int? MaxSteps { get; init; }

    /// <summary>Passes over the training data when <see cref="MaxSteps"/> is null (<c>--epochs</c>).</summary>
    public int Epochs { get; init; } = 1;

    /// <summary>Examples per micro-batch.</summary>
    public int BatchSize { get; init; } = 8;

    /// <summary>Micro-batches per optimizer step.</summary>
    public int Accumulation { get; init; } = 1;

    /// <summary>Peak learning rate, reached at the end of the warmup, in (0, 1] (<c>--lr</c>).</summary>
    public double LearningRate { get; init; } = 2e-4;

    /// <summary>Optimizer steps of linear warmup from 0 to the peak (<c>--warmup</c>).</summary>
    public int WarmupSteps { get; init; }

    /// <summary>How the learning rate falls after the warmup (<c>--schedule</c>: cosine, linear or constant).</summary>
    public DecayKind Decay { get; init; } = DecayKind.Cosine;

    /// <summary>AdamW's decoupled weight decay, in [0, 1] (<c>--weight-decay</c>); 0 by default, as in Hugging Face's
    /// Trainer. It spares biases, norms, IA3 vectors and DoRA magnitudes (<see cref="WeightDecayRule"/>).</summary>
    public double WeightDecay { get; init; }

    /// <summary>The base model's own dropout while training (<see cref="Runtime.LanguageModel.BaseDropout"/>): null applies
    /// config.json's rates, as transformers does; a value in [0, 1] replaces them all, 0 turns them off (<c>--base-dropout</c>).</summary>
    public double? BaseDropout { get; init; }

    /// <summary>Global gradient-norm limit; 0 turns clipping off.</summary>
    public double ClipNorm { get; init; } = 1.0;

    /// <summary>Seeds the data order (with the epoch) and each step's randomness, such as dropout (with the step), so a
    /// resumed run repeats the uninterrupted one (<c>--seed</c>).</summary>
    public int Seed { get; init; } = 1234;

    /// <summary>NeMo's answer_only_loss: prompt tokens take no loss.</summary>
    public bool AnswerOnlyLoss { get; init; } = true;

    /// <summary>T-Few: on multiple-choice examples, add the length-normalised and unlikelihood losses over the choices
    /// to the language-modelling loss on the right answer.</summary>
    public bool TFewLosses { get; init; }

    /// <summary>Report a step event every n optimizer steps, and at the last (<c>--log-every</c>).</summary>
    public int LogEvery { get; init; } = 10;

    /// <summary>Pack each micro-batch's causal examples several to a row (<c>--packing</c>): less padding, the same loss.</summary>
    public bool Packing { get; init; }

    /// <summary>Recompute each transformer block in backward instead of keeping its activations
    /// (<c>--gradient-checkpointing</c>): less memory, one more forward per step, the same gradients. Not part of
    /// <see cref="Settings"/>: a resumed run may turn it on or off.</summary>
    public bool GradientCheckpointing { get; init; }

    /// <summary>Evaluate every n steps (0: only at the end).</summary>
    public int EvalEvery { get; init; }

    /// <summary>Checkpoint every n steps (0: at each evaluation and at the end).</summary>
    public int SaveEvery { get; init; }

    /// <summary>Stop after this many evaluations without improvement (0: never).</summary>
    public int Patience { get; init; }

    /// <summary>The eval metric that picks the best evaluation and drives early stopping (<c>--metric</c>).</summary>
    public EvalMetric Metric { get; init; } = EvalMetric.Loss;

    /// <summary>What else the run's math depends on, named by option (LoRA settings, data format, max length):
    /// recorded in checkpoints with <see cref="Settings"/>.</summary>
    public IReadOnlyDictionary<string, string> RunSettings { get; init; } = new Dictionary<string, string>();

    /// <summary>The settings a resumed run must share with its checkpoint, by option name. Logging, evaluation and
    /// checkpoint cadence may change; anything that changes what the steps compute may not.</summary>
    public IReadOnlyDictionary<string, string> Settings()
    {
        static string N(double x) => x.ToString("R", System.Globalization.CultureInfo.InvariantCulture);
        var settings = new Dictionary<string, string>(TFewLosses ? RunSettings.Append(new("--tfew", "yes")).ToDictionary() : RunSettings)
        {
            ["--lr"] = N(LearningRate),
            ["--warmup"] = WarmupSteps.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["--schedule"] = Decay.ToString().ToLowerInvariant(),
            ["--weight-decay"] = N(WeightDecay),
            ["--clip"] = N(ClipNorm),
            ["--base-dropout"] = BaseDropout is { } p ? N(p) : "config",
            ["--full-loss"] = AnswerOnlyLoss ? "no" : "yes",
            ["--metric"] = Metric == EvalMetric.Loss ? "loss" : "exact_match",
            ["--packing"] = Packing ? "yes" : "no",
        };
        return settings;
    }

    /// <summary>Refuses out-of-range options, naming each by its command-line option; returns the options.</summary>
    public TrainerOptions Validate()
    {
        Positive(BatchSize, "--batch");
        Positive(Accumulation, "--accumulate");
        Positive(Epochs, "--epochs");
        if (MaxSteps is { } steps) Positive(steps, "--steps");
        // AdamW moves each weight by about lr per step, and decays it by lr × weight decay: past these bounds
        // a run only diverges, so they are refused rather than trained.
        if (!(LearningRate > 0 && LearningRate <= 1)) throw Bad("--lr must be a number in (0, 1]", LearningRate);
        if (!(WeightDecay >= 0 && WeightDecay <= 1)) throw Bad("--weight-decay must be in [0, 1]", WeightDecay);
        if (!(ClipNorm >= 0 && double.IsFinite(ClipNorm))) throw Bad("--clip must be 0 (off) or more", ClipNorm);
        if (BaseDropout is { } dropout && !(dropout >= 0 && dropout <= 1)) throw Bad("--base-dropout must be in [0, 1] (or config)", dropout);
        if (WarmupSteps < 0) throw Bad("--warmup must be 0 or more", WarmupSteps);
        if (Seed < 0) throw Bad("--seed must be 0 or more", Seed);
        if (LogEvery <= 0) throw Bad("--log-every must be positive", LogEvery);
        if (EvalEvery < 0) throw Bad("--eval-every must be 0 (at the end) or more", EvalEvery);
        if (SaveEvery < 0) throw Bad("--save-every must be 0 (with evaluations) or more", SaveEvery);
        if (Patience < 0) throw Bad("--patience must be 0 (off) or more", Patience);
        return this;
    }

    private static void Positive(int value, string option)
    {
        if (value <= 0) throw Bad($"{option} must be positive", value);
    }

    private static PeftDslException Bad(string what, double value) =>
        new($"{what}, got {value.ToString(System.Globalization.CultureInfo.InvariantCulture)}");
}
