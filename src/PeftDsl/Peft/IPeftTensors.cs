namespace PeftDsl.Peft;

/// <summary>
/// A module whose parameters belong to a PEFT method, not to the base model. Checkpoint layout, the strict loader
/// and <c>SaveWeights</c> skip it and everything under it, so base checkpoints and adapter files never mix.
/// </summary>
public interface IPeftTensors
{
}
