using static TorchSharp.torch;

namespace PeftDsl.Checkpoints.Safetensors;

/// <summary>One tensor's header entry, already validated against the file's size.</summary>
/// <param name="Begin">Offset of the first byte, relative to the start of the data section.</param>
public sealed record SafetensorsEntry(string Name, ScalarType DType, long[] Shape, long Begin, long ByteLength)
{
    /// <summary>The number of elements: the product of <c>Shape</c> (1 for a scalar, 0 when a dimension is 0).</summary>
    public long ElementCount => Shape.Aggregate(1L, (a, b) => a * b);

    /// <summary>The shape as <c>[d0, d1, …]</c>, for messages.</summary>
    public string ShapeText => "[" + string.Join(", ", Shape) + "]";
}
