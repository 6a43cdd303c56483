using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftDsl.Modules;

/// <summary>
/// T5's learned relative position bias: a [buckets, heads] table indexed by the bucketed distance between key
/// and query. Near distances get a bucket each; far ones share log-spaced buckets up to <c>max_distance</c>. The
/// encoder's buckets tell left from right; the decoder's only look back. One table, in the first layer, serves
/// the whole stack.
/// </summary>
public sealed class RelativePositionBias : nn.Module<Tensor, Tensor>
{
    /// <summary>The [buckets, heads] table (T5's <c>relative_attention_bias.weight</c>).</summary>
    public readonly Parameter weight;
    private readonly long buckets;
    private readonly long maxDistance;
    private readonly bool bidirectional;

    /// <param name="buckets">Number of buckets (<c>relative_attention_num_buckets</c>).</param>
    /// <param name="heads">Attention heads; each gets its own bias per bucket.</param>
    /// <param name="maxDistance">Distance beyond which all positions share the last bucket (<c>relative_attention_max_distance</c>).</param>
    /// <param name="bidirectional">True for the encoder (keys on both sides); false for the causal decoder.</param>
    public RelativePositionBias(long buckets, long heads, long maxDistance, bool bidirectional) : base(nameof(RelativePositionBias))
    {
        this.buckets = buckets;
        this.maxDistance = maxDistance;
        this.bidirectional = bidirectional;
        weight = OwnedParameter.Of(empty(buckets, heads));
        register_parameter("weight", weight);
    }

    /// <summary>The bias for queries at positions past..past+Tq-1 against keys 0..Tk-1.</summary>
    /// <returns>(1, heads, Tq, Tk)</returns>
    public Tensor Compute(long past, long queryLength, long keyLength)
    {
        using var scope = NewDisposeScope();
        var queries = arange(past, past + queryLength, dtype: ScalarType.Int64, device: weight.device);
        var keys = arange(keyLength, dtype: ScalarType.Int64, device: weight.device);
        var bucket = forward(keys.unsqueeze(0) - queries.unsqueeze(1));                     // (Tq, Tk)
        return weight.index_select(0, bucket.reshape(-1))
            .view(queryLength, keyLength, -1).permute(2, 0, 1).unsqueeze(0).MoveToOuterDisposeScope();
    }

    /// <summary>Relative positions (key − query) → bucket indices, as transformers' <c>_relative_position_bucket</c>.</summary>
    public override Tensor forward(Tensor relative)
    {
        using var scope = NewDisposeScope();
        var n = buckets;
        var result = zeros_like(relative);
        if (bidirectional)
        {
            n /= 2;
            result = result + (relative > 0).to(ScalarType.Int64) * n;
            relative = relative.abs();
        }
        else
        {
            relative = (-relative).clamp_min(0);
        }
        var maxExact = n / 2;
        var isSmall = relative < maxExact;
        // log(0) is -inf here, but those entries are small and take the exact branch.
        var large = maxExact + (log(relative.to(ScalarType.Float32) / maxExact) / Math.Log((double)maxDistance / maxExact) * (n - maxExact))
            .to(ScalarType.Int64);
        large = large.clamp_max(n - 1);
        return (result + where(isSmall, relative, large)).MoveToOuterDisposeScope();
    }
}
