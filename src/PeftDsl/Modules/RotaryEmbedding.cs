using PeftDsl.Errors;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftDsl.Modules;

/// <summary>
/// Rotary position embedding (RoPE) in the "rotate half" convention of transformers' Llama. It has no weights
/// (transformers keeps <c>inv_freq</c> as a non-persistent buffer), so it is not a registered module.
/// </summary>
public sealed class RotaryEmbedding
{
    private readonly long headDim;
    private readonly double theta;

    public RotaryEmbedding(long headDim, double theta, string ropeType, string source)
    {
        if (ropeType != "default")
            throw new ConfigException($"{source}: rope_type '{ropeType}' is not supported yet (only 'default')");
        if (headDim <= 0 || headDim % 2 != 0)
            throw new ConfigException($"{source}: rotary head size {headDim} must be a positive even number");
        this.headDim = headDim;
        this.theta = theta;
    }

    /// <summary>cos and sin tables (…, head_dim) for <paramref name="positions"/> of any shape, computed in fp32
    /// and cast to <paramref name="dtype"/>.</summary>
    public (Tensor Cos, Tensor Sin) Tables(Tensor positions, ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        var exponents = arange(0, headDim, 2, dtype: ScalarType.Float32, device: positions.device) / headDim;
        var invFreq = pow(theta, exponents).reciprocal();                                    // (hd/2)
        var freqs = positions.to(ScalarType.Float32).unsqueeze(-1) * invFreq;                // (…, hd/2)
        var emb = cat([freqs, freqs], dim: -1);                                              // (…, hd)
        return (emb.cos().to(dtype).MoveToOuterDisposeScope(), emb.sin().to(dtype).MoveToOuterDisposeScope());
    }

    /// <summary>Rotates (B, h, T, hd) queries or keys by tables that broadcast to them ((B or 1, 1, T, hd)).</summary>
    public static Tensor Apply(Tensor x, Tensor cos, Tensor sin)
    {
        using var scope = NewDisposeScope();
        var half = x.shape[^1] / 2;
        var x1 = x.narrow(-1, 0, half);
        var x2 = x.narrow(-1, half, half);
        var rotated = cat([-x2, x1], dim: -1);
        return (x * cos + rotated * sin).MoveToOuterDisposeScope();
    }
}
