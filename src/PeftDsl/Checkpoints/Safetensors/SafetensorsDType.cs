using PeftDsl.Errors;
using static TorchSharp.torch;

namespace PeftDsl.Checkpoints.Safetensors;

/// <summary>The safetensors dtype names and their torch equivalents.</summary>
public static class SafetensorsDType
{
    private static readonly Dictionary<string, (ScalarType Type, int Size)> ByName = new()
    {
        ["F64"] = (ScalarType.Float64, 8),
        ["F32"] = (ScalarType.Float32, 4),
        ["F16"] = (ScalarType.Float16, 2),
        ["BF16"] = (ScalarType.BFloat16, 2),
        ["I64"] = (ScalarType.Int64, 8),
        ["I32"] = (ScalarType.Int32, 4),
        ["I16"] = (ScalarType.Int16, 2),
        ["I8"] = (ScalarType.Int8, 1),
        ["U8"] = (ScalarType.Byte, 1),
        ["BOOL"] = (ScalarType.Bool, 1),
    };

    /// <summary>Maps a header dtype name (<c>F32</c>, <c>BF16</c>, <c>I64</c>, …) to its torch type and its size in bytes.</summary>
    /// <returns>False for a name this reader does not support (see <see cref="Supported"/>).</returns>
    public static bool TryParse(string name, out ScalarType type, out int elementSize)
    {
        if (ByName.TryGetValue(name, out var v))
        {
            (type, elementSize) = v;
            return true;
        }
        (type, elementSize) = (default, 0);
        return false;
    }

    /// <summary>The safetensors name of a torch dtype (<c>Float32</c> → <c>F32</c>), for writing headers.</summary>
    /// <exception cref="CheckpointException">The dtype has no safetensors name here (complex types, for instance).</exception>
    public static string NameOf(ScalarType type)
    {
        foreach (var (name, v) in ByName)
            if (v.Type == type) return name;
        throw new CheckpointException($"dtype {type} cannot be stored in safetensors by PeftDsl");
    }

    /// <summary>Bytes per element of <paramref name="type"/> as stored (2 for BF16/F16, 4 for F32, …).</summary>
    public static int SizeOf(ScalarType type) => ByName[NameOf(type)].Size;

    /// <summary>All names this reader accepts, for messages.</summary>
    public static string Supported => string.Join(", ", ByName.Keys);
}
