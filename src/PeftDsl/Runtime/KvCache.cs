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

    /// <summary>Tokens already in the self-attention entries; the next step's positions start here.</summary>
    public long PastLength { get; private set; }

    /// <summary>Appends this step's (B, h, T, hd) keys and values for <paramref name="module"/>; returns all of them.</summary>
    public (Tensor K, Tensor V) AppendSelf(object module, Tensor k, Tensor v)
    {
        if (self.TryGetValue(module, out var past))
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

    /// <summary>Called once per forward by whoever drives decoding, after every layer has appended.</summary>
    public void Advance(long tokens) => PastLength += tokens;

    public void Dispose()
    {
        foreach (var (k, v) in self.Values.Concat(cross.Values))
        {
            k.Dispose();
            v.Dispose();
        }
        self.Clear();
        cross.Clear();
    }

    // A fresh handle outside any dispose scope: the step's scope may free the tensor it came from.
    private static Tensor Own(Tensor t) => t.alias().DetachFromDisposeScope();
}
