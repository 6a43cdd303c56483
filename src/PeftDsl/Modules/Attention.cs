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

    /// <summary>A fused projection's (B, T, (h + 2·kv)·hd) output in the interleaved layout of GPT-NeoX and Falcon:
    /// per key/value group, its h/kv query heads, then its key head, then its value head (GPT-NeoX: h = kv, so each
    /// head's [q | k | v]). → q (B, h, T, hd), k and v (B, kv, T, hd).</summary>
    public static (Tensor Q, Tensor K, Tensor V) SplitInterleaved(Tensor qkv, long heads, long kvHeads, long headDim)
    {
        long b = qkv.shape[0], t = qkv.shape[1], group = heads / kvHeads;
        var grouped = qkv.view(b, t, kvHeads, group + 2, headDim);
        var q = grouped.narrow(3, 0, group).reshape(b, t, heads, headDim).transpose(1, 2);
        var k = grouped.select(3, group).transpose(1, 2);
        var v = grouped.select(3, group + 1).transpose(1, 2);
        return (q, k, v);
    }

    /// <summary>(B, h, T, hd) → (B, T, h·hd).</summary>
    public static Tensor MergeHeads(Tensor x) =>
        x.transpose(1, 2).contiguous().view(x.shape[0], x.shape[2], x.shape[1] * x.shape[3]);

    /// <summary>
    /// Softmax attention over <c>scaled_dot_product_attention</c>, which picks flash or memory-efficient kernels
    /// where it can. Grouped-query keys/values (fewer heads) are repeated to the query heads, except in a one-token
    /// decoding step (<see cref="GroupedDecodeStep"/>). TorchSharp's SDPA has
    /// no <c>scale</c> argument, so unscaled attention (T5) pre-multiplies the queries by √hd instead. An additive
    /// <paramref name="bias"/> (T5's relative positions) becomes a float mask with the boolean mask folded in.
    /// </summary>
    /// <param name="q">(B, h, Tq, hd)</param>
    /// <param name="k">(B, hkv, Tk, hd)</param>
    /// <param name="v">(B, hkv, Tk, hd)</param>
    /// <param name="bias">(1 or B, h, Tq, Tk) added to the scores, or null.</param>
    /// <param name="dropout">Dropout on the attention probabilities (the caller passes 0 outside training).</param>
    /// <param name="scale">The score scaling when it is not 1/√hd (Gemma's <c>query_pre_attn_scalar</c>^-0.5); 0 for the
    /// usual one. SDPA cannot take it, so the queries are pre-multiplied.</param>
    /// <param name="softcap">Attention logit soft-capping (Gemma 2); 0 for none. SDPA cannot cap, so a capped layer
    /// runs <see cref="SoftCapped"/>.</param>
    /// <returns>(B, h, Tq, hd)</returns>
    public static Tensor ScaledDotProduct(Tensor q, Tensor k, Tensor v, AttentionMask mask, bool scaled = true, Tensor? bias = null, double dropout = 0.0,
        double scale = 0, double softcap = 0)
    {
        using var scope = NewDisposeScope();
        var hd = q.shape[^1];
        if (softcap > 0)
        {
            if (bias is not null) throw new ArgumentException("soft-capped attention takes no position bias", nameof(bias));
            return SoftCapped(q, k, v, mask, scale > 0 ? scale : scaled ? 1.0 / Math.Sqrt(hd) : 1.0, softcap, dropout).MoveToOuterDisposeScope();
        }
        // A scale that is 1/√hd (Gemma's query_pre_attn_scalar equal to head_dim) is SDPA's own: no extra multiply.
        if (scale > 0 && Math.Abs(scale * Math.Sqrt(hd) - 1) > 1e-12) q = q * (scale * Math.Sqrt(hd));
        else if (scale <= 0 && !scaled) q = q * Math.Sqrt(hd);
        var repeats = q.shape[1] / k.shape[1];
        if (repeats > 1 && bias is null && q.shape[2] == 1 && (!mask.IsCausal || k.shape[2] == 1))
            return GroupedDecodeStep(q, k, v, mask.Mask, repeats, dropout).MoveToOuterDisposeScope();
        if (repeats > 1)
        {
            k = k.repeat_interleave(repeats, dim: 1);                           // (B, h, Tk, hd)
            v = v.repeat_interleave(repeats, dim: 1);
        }
        Tensor y;
        if (bias is null)
        {
            y = nn.functional.scaled_dot_product_attention(q, k, v, mask.Mask, dropout, mask.IsCausal);
        }
        else
        {
            long tq = q.shape[2], tk = k.shape[2];
            var allowed = mask.Mask ?? (mask.IsCausal ? ones(tq, tk, dtype: ScalarType.Bool, device: q.device).tril(tk - tq) : null);
            var scores = allowed is null ? bias : bias.masked_fill(allowed.logical_not(), MinValue(bias.dtype));
            y = nn.functional.scaled_dot_product_attention(q, k, v, scores.to(q.dtype), dropout, false);
        }
        return y.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Attention with soft-capped logits, as transformers' eager Gemma 2 attention computes it: scores = q·kᵀ × scale,
    /// then cap × tanh(scores / cap), then the mask, then softmax in fp32 cast back to the queries' dtype.
    /// </summary>
    /// <param name="q">(B, h, Tq, hd)</param>
    /// <param name="k">(B, hkv, Tk, hd)</param>
    /// <param name="v">(B, hkv, Tk, hd)</param>
    /// <returns>(B, h, Tq, hd)</returns>
    public static Tensor SoftCapped(Tensor q, Tensor k, Tensor v, AttentionMask mask, double scale, double softcap, double dropout = 0.0)
    {
        using var scope = NewDisposeScope();
        var repeats = q.shape[1] / k.shape[1];
        if (repeats > 1)
        {
            k = k.repeat_interleave(repeats, dim: 1);                           // (B, h, Tk, hd)
            v = v.repeat_interleave(repeats, dim: 1);
        }
        long tq = q.shape[2], tk = k.shape[2];
        var scores = q.matmul(k.transpose(2, 3)) * scale;                       // (B, h, Tq, Tk)
        scores = (scores / softcap).tanh() * softcap;
        var allowed = mask.Mask ?? (mask.IsCausal ? ones(tq, tk, dtype: ScalarType.Bool, device: q.device).tril(tk - tq) : null);
        if (allowed is not null) scores = scores.masked_fill(allowed.logical_not(), MinValue(scores.dtype));
        var probabilities = scores.softmax(-1, ScalarType.Float32).to(q.dtype);
        if (dropout > 0) probabilities = nn.functional.dropout(probabilities, dropout, training: true);
        return probabilities.matmul(v).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// One decoding step of grouped-query attention without repeating the cache: the query heads of a group become
    /// that group's query rows, (B, h, 1, hd) → (B, hkv, h/hkv, hd), which is the same attention because a single query
    /// position has no causal structure among its rows and the (B or 1, 1, 1, Tk) mask broadcasts over them. The
    /// repeat it replaces copied the whole cache, twice, in every layer and every step (TorchSharp's SDPA has no
    /// <c>enable_gqa</c>).
    /// </summary>
    /// <returns>(B, h, 1, hd)</returns>
    internal static Tensor GroupedDecodeStep(Tensor q, Tensor k, Tensor v, Tensor? mask, long repeats, double dropout = 0.0)
    {
        long b = q.shape[0], h = q.shape[1], hd = q.shape[3];
        var grouped = q.view(b, k.shape[1], repeats, hd);                                      // (B, hkv, rep, hd)
        var y = nn.functional.scaled_dot_product_attention(grouped, k, v, mask, dropout, false);   // (B, hkv, rep, hd)
        // reshape, not view: CUDA's memory-efficient kernel returns (B, hkv, rep, hd) as a transpose of its
        // (B, rep, hkv, hd) buffer, which a view cannot merge.
        return y.reshape(b, h, 1, hd);
    }

    /// <summary>T5's position bias with the pass's mask folded in, in the queries' dtype: made once by the first
    /// layer of a stack and passed to every layer's <see cref="ScaledDotProduct"/> as the whole mask (it used to be
    /// masked and cast again in each layer).</summary>
    /// <param name="bias">(1 or B, h, Tq, Tk)</param>
    public static Tensor FoldMask(Tensor bias, AttentionMask mask, ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        long tq = bias.shape[^2], tk = bias.shape[^1];
        var allowed = mask.Mask ?? (mask.IsCausal ? ones(tq, tk, dtype: ScalarType.Bool, device: bias.device).tril(tk - tq) : null);
        var folded = allowed is null ? bias : bias.masked_fill(allowed.logical_not(), MinValue(bias.dtype));
        return folded.to(dtype).MoveToOuterDisposeScope();
    }

    /// <summary>The most negative finite value: masked scores get it (not −∞), as transformers does, so a
    /// fully masked row stays finite.</summary>
    private static double MinValue(ScalarType dtype) => dtype switch
    {
        ScalarType.Float16 => -65504.0,
        ScalarType.BFloat16 => -3.3895313892515355e38,
        ScalarType.Float64 => double.MinValue,
        _ => float.MinValue,
    };
}
