using static TorchSharp.torch;

namespace PeftDsl.Checkpoints.Safetensors;

/// <summary>One tensor's header entry, already validated against the file's size.</summary>
/// <param name="Begin">Offset of the first byte, relative to the start of the data section.</param>
public sealed record SafetensorsEntry(string Name, ScalarType DType, long[] Shape, long Begin, long ByteLength)
{
    public long ElementCount => Shape.Aggregate(1L, (a, b) => a * b);

    public string ShapeText => "[" + string.Join(", ", Shape) + "]";
}
