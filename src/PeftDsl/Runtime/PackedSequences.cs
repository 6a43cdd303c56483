using PeftDsl.Errors;
using static TorchSharp.torch;

namespace PeftDsl.Runtime;

/// <summary>
/// Several examples sharing one row of a causal batch (<c>--packing</c>): which example each position belongs to and
/// where it sits in it. The stack restarts positions per example and confines attention to it (a block-diagonal
/// causal mask), so every token sees exactly what it would see alone, and the packed loss is the unpacked one.
/// </summary>
/// <param name="Segments">(B, T) int64: 1, 2, … for the examples of a row, 0 for padding.</param>
/// <param name="Positions">(B, T) int64: each token's position within its example (0 at its first token).</param>
public sealed record PackedSequences(Tensor Segments, Tensor Positions) : IDisposable
{
    /// <summary>The (B, 1, T, T) mask: a query sees the earlier keys of its own example, and itself (padding too, so
    /// that no row of the softmax is empty).</summary>
    internal Tensor Mask(Device device)
    {
        using var scope = NewDisposeScope();
        var length = Segments.shape[1];
        var segments = Segments.to(device);
        var same = segments.unsqueeze(2).eq(segments.unsqueeze(1));                                      // (B, T, T)
        var causal = ones(length, length, dtype: ScalarType.Bool, device: device).tril();
        var self = eye(length, dtype: ScalarType.Bool, device: device);
        return ((same & causal) | self).unsqueeze(1).MoveToOuterDisposeScope();
    }

    /// <summary>Refuses a packing that does not fit the pass: another shape, or a pass after cached tokens.</summary>
    internal void Check(long batch, long length, long past)
    {
        if (past > 0) throw new PeftDslException("packed sequences are for whole passes (training, evaluation), not for decoding after a cache");
        foreach (var (tensor, what) in new[] { (Segments, "segments"), (Positions, "positions") })
            if (tensor.dim() != 2 || tensor.shape[0] != batch || tensor.shape[1] != length)
                throw new PeftDslException($"packed {what} have shape [{string.Join(", ", tensor.shape)}], expected [{batch}, {length}] to match the input");
    }

    /// <summary>Frees both tensors.</summary>
    public void Dispose()
    {
        Segments.Dispose();
        Positions.Dispose();
    }
}
