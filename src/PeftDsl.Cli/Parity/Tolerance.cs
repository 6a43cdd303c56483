using TorchSharp;
using static TorchSharp.torch;

namespace PeftDsl.Cli.Parity;

/// <summary>The fixture README's tolerances for a correct fp32 CPU implementation.</summary>
public static class Tolerance
{
    /// <summary>Largest absolute difference allowed in logits, losses and other outputs.</summary>
    public const double OutputAbs = 1e-4;
    /// <summary>Absolute gradient tolerance: an element passes within this, or within <see cref="GradRel"/> relative to the reference.</summary>
    public const double GradAbs = 1e-4;
    /// <summary>Relative gradient tolerance, as a fraction of the reference element.</summary>
    public const double GradRel = 1e-3;

    /// <summary>Max |a - b| over the elements where <paramref name="where"/> is true (all when null).</summary>
    public static double MaxAbs(Tensor actual, Tensor expected, Tensor? where = null)
    {
        using var scope = NewDisposeScope();
        var diff = (actual.to(ScalarType.Float64) - expected.to(ScalarType.Float64)).abs();
        if (where is not null) diff = diff.masked_select(where);
        return diff.NumberOfElements == 0 ? 0 : diff.max().item<double>();
    }

    /// <summary>Gradients pass element-wise within 1e-4 absolute or 1e-3 relative to the reference.</summary>
    public static bool GradientsClose(Tensor actual, Tensor expected)
    {
        using var scope = NewDisposeScope();
        var a = actual.to(ScalarType.Float64);
        var e = expected.to(ScalarType.Float64);
        var bound = maximum(full_like(e, GradAbs), e.abs() * GradRel);
        return ((a - e).abs() <= bound).all().item<bool>();
    }
}
