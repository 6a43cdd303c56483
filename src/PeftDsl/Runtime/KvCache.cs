using PeftDsl.Errors;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftDsl.Runtime;

/// <summary>
/// Keys and values of tokens already decoded, per attention module, so each step runs only the new tokens.
/// Self-attention entries grow by the step's tokens; cross-attention entries are the encoder's keys and values,
/// computed once. The cache owns its tensors (they live outside every dispose scope) and frees them on Dispose.
/// </summary>
public sealed class KvCache : IDisposable
{
    private readonly Dictionary<object, (Tensor K, Tensor V)> self = new(ReferenceEqualityComparer.Instance);
    private readonly Dictionary<object, (Tensor K, Tensor V)> cross = new(ReferenceEqualityComparer.Instance);
    // Prefix tuning: past keys and values for the self-attention layers, taken in the order the layers first append.
    private Queue<(Tensor K, Tensor V)>? prefix;
    private int prefixLayers;

    /// <summary>Tokens already in the self-attention entries; the next step's positions start here.</summary>
    public long PastLength { get; private set; }

    /// <summary>Of <see cref="PastLength"/>, the virtual positions a prompt put in front (prompt rows or a prefix).</summary>
    public long VirtualLength { get; private set; }

    /// <summary>Records that the pass just run put <paramref name="count"/> virtual positions in front, and advances.</summary>
    public void AddVirtual(long count)
    {
        VirtualLength += count;
        PastLength += count;
    }

    /// <summary>Appends this step's (B, h, T, hd) keys and values for <paramref name="module"/>; returns all of them.</summary>
    public (Tensor K, Tensor V) AppendSelf(object module, Tensor k, Tensor v)
    {
        var found = self.TryGetValue(module, out var past);
        if (!found && prefix is not null) (found, past) = (true, TakePrefix(k));
        if (found)
        {
            k = cat([past.K, k], dim: 2);
            v = cat([past.V, v], dim: 2);
            past.K.Dispose();
            past.V.Dispose();
        }
        var entry = (Own(k), Own(v));
        self[module] = entry;
        return entry;
    }

    /// <summary>The encoder keys and values for a cross-attention module, computed on first use.</summary>
    public (Tensor K, Tensor V) Cross(object module, Func<(Tensor K, Tensor V)> compute)
    {
        if (!cross.TryGetValue(module, out var entry))
        {
            var (k, v) = compute();
            entry = (Own(k), Own(v));
            cross[module] = entry;
        }
        return entry;
    }

    /// <summary>Prefix tuning: starts the cache with <paramref name="length"/> past positions whose keys and values
    /// (B, heads, length, head size) are given per self-attention layer, in the order the layers run.</summary>
    public void Prefill(IReadOnlyList<(Tensor K, Tensor V)> layers, long length)
    {
        if (PastLength != 0 || self.Count > 0 || prefix is not null)
            throw new InvalidOperationException("a prefix goes into an empty cache");
        prefix = new Queue<(Tensor K, Tensor V)>(layers.Select(l => (Own(l.K), Own(l.V))));
        prefixLayers = layers.Count;
        PastLength = length;
        VirtualLength = length;
    }

    /// <summary>After the first forward: every prefix layer must have been read by a self-attention layer.</summary>
    public void CheckPrefixUsed()
    {
        if (prefix is { Count: > 0 })
            throw new PeftDslException($"prefix tuning: the prefix holds keys and values for {prefixLayers} layers, but the model " +
                                       $"ran {prefixLayers - prefix.Count} self-attention layers; the adapter was made for another model");
    }

    /// <summary>(key/value heads, head size) of each self-attention entry, in the order the layers first appended.</summary>
    public IReadOnlyList<(long Heads, long HeadDim)> SelfShapes => self.Values.Select(e => (e.K.shape[1], e.K.shape[3])).ToList();

    private (Tensor K, Tensor V) TakePrefix(Tensor k)
    {
        if (prefix!.Count == 0)
            throw new PeftDslException($"prefix tuning: the prefix holds keys and values for {prefixLayers} layers, but the model " +
                                       "has more self-attention layers; the adapter was made for another model");
        var (pk, pv) = prefix.Dequeue();
        if (pk.shape[0] != k.shape[0] || pk.shape[1] != k.shape[1] || pk.shape[3] != k.shape[3])
        {
            var shape = string.Join(", ", pk.shape);
            pk.Dispose();
            pv.Dispose();
            throw new PeftDslException($"prefix tuning: layer {prefixLayers - prefix.Count - 1}'s prefix keys are [{shape}], " +
                                       $"the layer's keys [{string.Join(", ", k.shape)}] (batch, heads, positions, head size)");
        }
        if (pk.dtype == k.dtype) return (pk, pv);
        // fp32 prefix rows on a bf16 base: the owned fp32 handles are replaced by the cast ones.
        using (pk)
        using (pv)
            return (pk.to(k.dtype), pv.to(k.dtype));
    }

    /// <summary>Called once per forward by whoever drives decoding, after every layer has appended.</summary>
    public void Advance(long tokens) => PastLength += tokens;

    /// <summary>Frees every cached key and value, self- and cross-attention, and any unused prefix-tuning entries.</summary>
    public void Dispose()
    {
        foreach (var (k, v) in self.Values.Concat(cross.Values))
        {
            k.Dispose();
            v.Dispose();
        }
        self.Clear();
        cross.Clear();
        while (prefix is { Count: > 0 })
        {
            var (k, v) = prefix.Dequeue();
            k.Dispose();
            v.Dispose();
        }
    }

    // A fresh handle outside any dispose scope: the step's scope may free the tensor it came from.
    private static Tensor Own(Tensor t) => t.alias().DetachFromDisposeScope();
}
