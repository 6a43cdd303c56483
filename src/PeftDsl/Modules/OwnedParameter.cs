using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftDsl.Modules;

/// <summary>
/// A parameter that belongs to its module, not to the caller's dispose scope. TorchSharp's <c>Parameter</c> takes over
/// its tensor's place in the scope that created it, so a model built (or an adapter added) inside
/// <c>NewDisposeScope()</c> would lose its weights when that scope ends.
/// </summary>
public static class OwnedParameter
{
    /// <summary>A parameter over <paramref name="value"/>, detached from every dispose scope so that it lives as long as
    /// its module.</summary>
    public static Parameter Of(Tensor value) => new(value.DetachFromDisposeScope());
}
