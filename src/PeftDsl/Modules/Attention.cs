using PeftDsl.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftDsl.Modules;

/// <summary>The attention kernel shared by every generated attention module.</summary>
public static class Attention
{
    /// <summary>(B, T, h·hd) → (B, h, T, hd).</summary>
    public static Tensor SplitHeads(Tensor x, long heads, long headDim) =>
        x.view(x.shape[0], x.shape[1], heads, headDim).transpose(1, 2);

    /// <summary>(B, h, T, hd) → (B, T, h·hd).</summary>
    public static Tensor MergeHeads(Tensor x) =>
        x.transpose(1, 2).contiguous().view(x.shape[0], x.shape[2], x.shape[1] * x.shape[3]);

    /// <summary>
    /// Softmax attention over <c>scaled_dot_product_attention</c>, which picks flash or memory-efficient kernels
    /// where it can. Grouped-query keys/values (fewer heads) are repeated to the query heads. TorchSharp's SDPA has
    /// no <c>scale</c> argument, so unscaled attention (T5) pre-multiplies the queries by √hd instead.
    /// </summary>
    /// <param name="q">(B, h, Tq, hd)</param>
    /// <param name="k">(B, hkv, Tk, hd)</param>
    /// <param name="v">(B, hkv, Tk, hd)</param>
    /// <returns>(B, h, Tq, hd)</returns>
    public static Tensor ScaledDotProduct(Tensor q, Tensor k, Tensor v, ForwardContext ctx, bool causal, bool scaled = true)
    {
        using var scope = NewDisposeScope();
        var repeats = q.shape[1] / k.shape[1];
        if (repeats > 1)
        {
            k = k.repeat_interleave(repeats, dim: 1);                           // (B, h, Tk, hd)
            v = v.repeat_interleave(repeats, dim: 1);
        }
        if (!scaled) q = q * Math.Sqrt(q.shape[^1]);
        var mask = causal ? ctx.CausalMask : ctx.KeyMask;
        var y = mask is null
            ? nn.functional.scaled_dot_product_attention(q, k, v, null, 0.0, causal)
            : nn.functional.scaled_dot_product_attention(q, k, v, mask, 0.0, false);
        return y.MoveToOuterDisposeScope();
    }
}
