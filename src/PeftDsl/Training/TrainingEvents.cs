using PeftDsl.Errors;

namespace PeftDsl.Training;

/// <summary>What a run reports as it goes (for progress bars, logs and metrics files).</summary>
public abstract record TrainingEvent(int Step);

/// <summary>An optimizer step: its mean loss over answer tokens, the learning rate it used, and throughput.</summary>
public sealed record StepEvent(int Step, int TotalSteps, int Epoch, double Loss, double LearningRate, double TokensPerSecond, double GradNorm)
    : TrainingEvent(Step);

public sealed record EvalEvent(int Step, EvalResult Result, bool Best) : TrainingEvent(Step);

public sealed record SaveEvent(int Step, string Path) : TrainingEvent(Step);

/// <summary>Loss and perplexity over answer tokens, and the share of examples whose greedy answer is exactly right.</summary>
public sealed record EvalResult(double Loss, double Perplexity, double ExactMatch, int Examples)
{
    /// <summary>Multiple-choice examples: the share whose best-scored choice is the right one (rank classification).</summary>
    public double? RankAccuracy { get; init; }

    public double Value(EvalMetric metric) => metric == EvalMetric.Loss ? Loss : ExactMatch;

    public bool Beats(EvalResult other, EvalMetric metric) =>
        metric == EvalMetric.Loss ? Loss < other.Loss : ExactMatch > other.ExactMatch;
}

/// <summary>The training loss became NaN or infinite; the step's update was not applied.</summary>
public sealed class TrainingDivergedException(int step, double loss)
    : PeftDslException($"step {step}: the training loss is {loss.ToString(System.Globalization.CultureInfo.InvariantCulture)}; stopped before the update. Lower --lr or check the data")
{
    public int Step { get; } = step;
}

/// <summary>How a run ended: <c>StopReason</c> is "finished", "stopped" (cancelled; checkpoint saved) or an early stop.</summary>
public sealed record TrainingResult(int Steps, EvalResult? LastEval, EvalResult? BestEval, string StopReason)
{
    public int TotalSteps { get; init; }
}
