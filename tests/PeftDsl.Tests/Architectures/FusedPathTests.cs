using PeftDsl.Modules;
using PeftDsl.Runtime;
using Xunit;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace PeftDsl.Tests.Architectures;

/// <summary>
/// Each fused path against the plain math it replaces, on the CPU (CI has no GPU; the GPU runs the same ops). Whole
/// models are checked against transformers by the parity fixtures and against hand-written networks by
/// <see cref="HandComposedTests"/>; these pin each path alone, including the shapes a model may not reach.
/// </summary>
[Collection(GlobalRandomness.Name)]
public sealed class FusedPathTests
{
    /// <summary>transformers' rotation: x·cos + rotate_half(x)·sin on the first rd features, the rest passed through.</summary>
    private static Tensor PlainRotary(Tensor x, Tensor positions, long rd, double theta)
    {
        var inv = pow(theta, arange(0, rd, 2, dtype: ScalarType.Float32) / rd).reciprocal();
        var emb = cat([positions.to(ScalarType.Float32).unsqueeze(-1) * inv, positions.to(ScalarType.Float32).unsqueeze(-1) * inv], -1);
        var (cos, sin) = (emb.cos(), emb.sin());
        var r = x.narrow(-1, 0, rd);
        var rotated = r * cos + cat([-r.narrow(-1, rd / 2, rd / 2), r.narrow(-1, 0, rd / 2)], -1) * sin;
        return rd == x.shape[^1] ? rotated : cat([rotated, x.narrow(-1, rd, x.shape[^1] - rd)], -1);
    }

    [Theory]
    [InlineData(1.0)]
    [InlineData(0.25)]
    public void TheRollRotationEqualsRotateHalf(double fraction)
    {
        manual_seed(3);
        using var scope = NewDisposeScope();
        var rotary = new RotaryEmbedding(headDim: 16, theta: 10000, ropeType: "default", source: "test", fraction: fraction);
        var positions = arange(5, 12, dtype: ScalarType.Int64).unsqueeze(0);                // (1, T): after a 5-token cache
        var x = randn(2, 3, 7, 16, requires_grad: true);
        var (cos, signedSin) = rotary.Tables(positions, ScalarType.Float32);
        var fused = RotaryEmbedding.Apply(x, cos.unsqueeze(1), signedSin.unsqueeze(1));
        var plain = PlainRotary(x, positions.unsqueeze(1), rotary.RotaryDim, 10000);
        Assert.True(fused.allclose(plain, rtol: 0, atol: 1e-6), $"max {(fused - plain).abs().max().item<float>()}");

        var weights = randn_like(fused);
        var gradFused = autograd.grad([(fused * weights).sum()], [x])[0];
        var gradPlain = autograd.grad([(plain * weights).sum()], [x])[0];
        Assert.True(gradFused.allclose(gradPlain, rtol: 0, atol: 1e-6));
    }

    /// <summary>A grouped-query decoding step over the cache, with and without padding, equals the repeated K/V.</summary>
    [Theory]
    [InlineData(false, true)]
    [InlineData(true, true)]
    [InlineData(false, false)]
    public void AGroupedDecodeStepEqualsRepeatedKeysAndValues(bool padded, bool scaled)
    {
        manual_seed(4);
        using var scope = NewDisposeScope();
        long b = 3, h = 8, kv = 2, tk = 11, hd = 16;
        var q = randn(b, h, 1, hd);
        var k = randn(b, kv, tk, hd);
        var v = randn(b, kv, tk, hd);
        var keep = ones(b, 1, 1, tk, dtype: ScalarType.Bool);
        if (padded) keep[0, 0, 0, TensorIndex.Slice(0, 4)] = tensor(false);               // a left-padded row
        var mask = new AttentionMask(padded ? keep : null, false);

        var grouped = Attention.ScaledDotProduct(q, k, v, mask, scaled);
        var qs = scaled ? q : q * Math.Sqrt(hd);
        var plain = F.scaled_dot_product_attention(qs, k.repeat_interleave(h / kv, dim: 1), v.repeat_interleave(h / kv, dim: 1),
            padded ? keep : null, 0.0, false);
        Assert.Equal(plain.shape, grouped.shape);
        Assert.True(grouped.allclose(plain, rtol: 0, atol: 1e-5), $"max {(grouped - plain).abs().max().item<float>()}");
    }
}
