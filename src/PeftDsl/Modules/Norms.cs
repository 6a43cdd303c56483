using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftDsl.Modules;

/// <summary>LayerNorm with weight and bias (GPT-2).</summary>
public sealed class LayerNorm : nn.Module<Tensor, Tensor>
{
    private readonly long[] normalizedShape;

    /// <summary>A LayerNorm over the last dimension of size <paramref name="dim"/>, weight ones and bias zeros.</summary>
    /// <param name="eps">Added to the variance (<c>layer_norm_epsilon</c>, <c>layer_norm_eps</c>).</param>
    public LayerNorm(long dim, double eps) : base(nameof(LayerNorm))
    {
        Eps = eps;
        normalizedShape = [dim];
        weight = OwnedParameter.Of(ones(dim));
        bias = OwnedParameter.Of(zeros(dim));
        register_parameter("weight", weight);
        register_parameter("bias", bias);
    }

    /// <summary>The [dim] scale (γ).</summary>
    public readonly Parameter weight;

    /// <summary>The [dim] shift (β).</summary>
    public readonly Parameter bias;

    /// <summary>Added to the variance for numerical stability.</summary>
    public double Eps { get; }

    /// <summary>(…, dim) → (…, dim), normalised over the last dimension.</summary>
    public override Tensor forward(Tensor x) => nn.functional.layer_norm(x, normalizedShape, weight, bias, Eps);
}

/// <summary>
/// RMSNorm (Llama, T5): x / rms(x) × weight, no mean and no bias. The statistics are taken in fp32 and the
/// result cast back before the weight multiplies it, as transformers does, so bf16 matches too.
/// </summary>
public sealed class RmsNorm : nn.Module<Tensor, Tensor>
{
    /// <summary>An RMSNorm over the last dimension of size <paramref name="dim"/>, weight ones.</summary>
    /// <param name="eps">Added to the mean square (<c>rms_norm_eps</c>, T5's <c>layer_norm_epsilon</c>).</param>
    public RmsNorm(long dim, double eps) : base(nameof(RmsNorm))
    {
        Eps = eps;
        weight = OwnedParameter.Of(ones(dim));
        register_parameter("weight", weight);
    }

    /// <summary>The [dim] scale.</summary>
    public readonly Parameter weight;

    /// <summary>Added to the mean square before the reciprocal square root.</summary>
    public double Eps { get; }

    /// <summary>(…, dim) → (…, dim) in <paramref name="x"/>'s dtype; the statistics are taken in fp32.</summary>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var x32 = x.to(ScalarType.Float32);
        var normed = x32 * (x32.pow(2).mean([-1], keepdim: true) + Eps).rsqrt();
        return (weight * normed.to(x.dtype)).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// Gemma's RMSNorm: x / rms(x) × (1 + weight). Unlike <see cref="RmsNorm"/>, the whole computation, the weight's
/// product included, is in fp32 and only the result is cast back (transformers' Gemma2RMSNorm/Gemma3RMSNorm), which
/// differs in bf16. The stored weight is the offset from one, so a fresh norm is zeros.
/// </summary>
public sealed class GemmaRmsNorm : nn.Module<Tensor, Tensor>
{
    /// <summary>A Gemma RMSNorm over the last dimension of size <paramref name="dim"/>, weight zeros (a scale of one).</summary>
    /// <param name="eps">Added to the mean square (<c>rms_norm_eps</c>).</param>
    public GemmaRmsNorm(long dim, double eps) : base(nameof(GemmaRmsNorm))
    {
        Eps = eps;
        weight = OwnedParameter.Of(zeros(dim));
        register_parameter("weight", weight);
    }

    /// <summary>The [dim] scale minus one.</summary>
    public readonly Parameter weight;

    /// <summary>Added to the mean square before the reciprocal square root.</summary>
    public double Eps { get; }

    /// <summary>(…, dim) → (…, dim) in <paramref name="x"/>'s dtype; computed in fp32.</summary>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var x32 = x.to(ScalarType.Float32);
        var normed = x32 * (x32.pow(2).mean([-1], keepdim: true) + Eps).rsqrt();
        return (normed * (weight.to(ScalarType.Float32) + 1.0)).to(x.dtype).MoveToOuterDisposeScope();
    }
}
