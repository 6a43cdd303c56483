using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftDsl.Modules;

/// <summary>LayerNorm with weight and bias (GPT-2).</summary>
public sealed class LayerNorm : nn.Module<Tensor, Tensor>
{
    private readonly long[] normalizedShape;

    public LayerNorm(long dim, double eps) : base(nameof(LayerNorm))
    {
        Eps = eps;
        normalizedShape = [dim];
        weight = OwnedParameter.Of(ones(dim));
        bias = OwnedParameter.Of(zeros(dim));
        register_parameter("weight", weight);
        register_parameter("bias", bias);
    }

    public readonly Parameter weight;

    public readonly Parameter bias;

    public double Eps { get; }

    public override Tensor forward(Tensor x) => nn.functional.layer_norm(x, normalizedShape, weight, bias, Eps);
}

/// <summary>
/// RMSNorm (Llama, T5): x / rms(x) × weight, no mean and no bias. The statistics are taken in fp32 and the
/// result cast back before the weight multiplies it, as transformers does, so bf16 matches too.
/// </summary>
public sealed class RmsNorm : nn.Module<Tensor, Tensor>
{
    public RmsNorm(long dim, double eps) : base(nameof(RmsNorm))
    {
        Eps = eps;
        weight = OwnedParameter.Of(ones(dim));
        register_parameter("weight", weight);
    }

    public readonly Parameter weight;

    public double Eps { get; }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var x32 = x.to(ScalarType.Float32);
        var normed = x32 * (x32.pow(2).mean([-1], keepdim: true) + Eps).rsqrt();
        return (weight * normed.to(x.dtype)).MoveToOuterDisposeScope();
    }
}
