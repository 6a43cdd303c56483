using PeftDsl.Errors;

namespace PeftDsl.Training;

/// <summary>After the warmup, how the learning rate falls to zero at the last step.</summary>
public enum DecayKind
{
    /// <summary>Half a cosine from the peak to 0 (transformers' <c>get_cosine_schedule_with_warmup</c>).</summary>
    Cosine,
    /// <summary>A straight line from the peak to 0 (<c>get_linear_schedule_with_warmup</c>).</summary>
    Linear,
    /// <summary>No decay: the peak until the end (<c>get_constant_schedule_with_warmup</c>).</summary>
    Constant,
}

/// <summary>Linear warmup from 0 to the peak over <c>warmup</c> steps, then decay to 0 at <c>total</c> steps:
/// transformers' get_cosine/linear/constant_schedule_with_warmup, as a pure function of the step.</summary>
public sealed record LearningRateSchedule(double Peak, int WarmupSteps, int TotalSteps, DecayKind Decay)
{
    /// <summary>Refuses a non-positive or non-finite peak, a negative warmup or a run without steps; returns the schedule.</summary>
    public LearningRateSchedule Validate()
    {
        if (!(Peak > 0 && double.IsFinite(Peak))) throw new PeftDslException($"--lr must be a positive number, got {Peak}");
        if (WarmupSteps < 0) throw new PeftDslException($"--warmup must be 0 or more, got {WarmupSteps}");
        if (TotalSteps <= 0) throw new PeftDslException($"the run has {TotalSteps} optimizer steps; it needs at least one");
        return this;
    }

    /// <param name="step">0-based index of the optimizer step about to be taken.</param>
    public double At(int step)
    {
        if (step < WarmupSteps) return Peak * step / Math.Max(1, WarmupSteps);
        var progress = (double)(step - WarmupSteps) / Math.Max(1, TotalSteps - WarmupSteps);
        return Decay switch
        {
            DecayKind.Cosine => Peak * Math.Max(0, 0.5 * (1 + Math.Cos(Math.PI * progress))),
            DecayKind.Linear => Peak * Math.Max(0, 1 - progress),
            _ => Peak,
        };
    }
}
