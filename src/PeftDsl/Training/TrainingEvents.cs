using PeftDsl.Errors;

namespace PeftDsl.Training;

/// <summary>What a run reports as it goes (for progress bars, logs and metrics files).</summary>
public abstract record TrainingEvent(int Step);

/// <summary>An optimizer step: its mean loss over answer tokens, the learning rate it used, and throughput.</summary>
/// <param name="PeakResidentBytes">The process's resident high-water mark so far (Linux <c>VmHWM</c>), or null.</param>
public sealed record StepEvent(int Step, int TotalSteps, int Epoch, double Loss, double LearningRate, double TokensPerSecond, double GradNorm,
    long? PeakResidentBytes = null)
    : TrainingEvent(Step);

/// <summary>An evaluation on the held-out examples, after an optimizer step.</summary>
/// <param name="Step">Optimizer steps taken so far.</param>
/// <param name="Result">Loss, perplexity and exact match of the evaluation.</param>
/// <param name="Best">True when this evaluation is the best so far by the run's metric (evaluations before a resume count).</param>
public sealed record EvalEvent(int Step, EvalResult Result, bool Best) : TrainingEvent(Step);

/// <summary>A checkpoint was written.</summary>
/// <param name="Step">Optimizer steps the checkpoint holds.</param>
/// <param name="Path">The checkpoint folder.</param>
public sealed record SaveEvent(int Step, string Path) : TrainingEvent(Step);

/// <summary>Loss and perplexity over answer tokens, and the share of examples whose greedy answer is exactly right.</summary>
public sealed record EvalResult(double Loss, double Perplexity, double ExactMatch, int Examples)
{
    /// <summary>Multiple-choice examples: the share whose best-scored choice is the right one (rank classification).</summary>
    public double? RankAccuracy { get; init; }

    /// <summary>The number <paramref name="metric"/> reads: the loss or the exact-match share.</summary>
    public double Value(EvalMetric metric) => metric == EvalMetric.Loss ? Loss : ExactMatch;

    /// <summary>True when this result is strictly better than <paramref name="other"/> by <paramref name="metric"/> (lower loss, higher exact match).</summary>
    public bool Beats(EvalResult other, EvalMetric metric) =>
        metric == EvalMetric.Loss ? Loss < other.Loss : ExactMatch > other.ExactMatch;
}

/// <summary>The run diverged: the loss or the gradient became NaN or infinite (the step's update was not applied), or
/// the update made the trainable tensors so (they were not saved). The last checkpoint, if any, holds finite values.</summary>
/// <param name="step">The optimizer step (1-based) that diverged.</param>
/// <param name="what">What became non-finite and what was not done, e.g. "the training loss is NaN; stopped before the update".</param>
public sealed class TrainingDivergedException(int step, string what)
    : PeftDslException($"step {step}: {what}. Lower --lr or check the data")
{
    /// <summary>The optimizer step (1-based) that diverged.</summary>
    public int Step { get; } = step;
}

/// <summary>How a run ended: <c>StopReason</c> is "finished", "stopped" (cancelled; checkpoint saved) or an early stop.</summary>
public sealed record TrainingResult(int Steps, EvalResult? LastEval, EvalResult? BestEval, string StopReason)
{
    /// <summary>The steps the run was planned to take (<c>Steps</c> is fewer after a stop or an early stop).</summary>
    public int TotalSteps { get; init; }
}
