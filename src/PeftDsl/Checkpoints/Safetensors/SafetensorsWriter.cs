using System.Text.Json;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftDsl.Checkpoints.Safetensors;

/// <summary>Writes safetensors files. The file appears atomically: it is written beside the target and renamed,
/// so a crash never leaves a half-written checkpoint under the real name.</summary>
public static class SafetensorsWriter
{
    /// <summary>Writes <paramref name="tensors"/> to a safetensors file at <paramref name="path"/>, keys sorted (ordinal),
    /// data 8-byte aligned, each tensor copied to the CPU and made contiguous. The file is written beside the target
    /// and renamed over it, replacing any existing file.</summary>
    /// <param name="path">The target file.</param>
    /// <param name="tensors">Name → tensor; names must be unique.</param>
    /// <param name="metadata">Optional string map written as the header's <c>__metadata__</c> (omitted when empty).</param>
    /// <exception cref="Errors.CheckpointException">A tensor's dtype cannot be stored in safetensors.</exception>
    public static void Save(string path, IEnumerable<KeyValuePair<string, Tensor>> tensors,
        IReadOnlyDictionary<string, string>? metadata = null)
    {
        var items = tensors.OrderBy(t => t.Key, StringComparer.Ordinal).ToList();
        var header = new Dictionary<string, object>();
        if (metadata is { Count: > 0 }) header["__metadata__"] = metadata;
        long offset = 0;
        foreach (var (name, t) in items)
        {
            var bytes = t.NumberOfElements * SafetensorsDType.SizeOf(t.dtype);
            header[name] = new { dtype = SafetensorsDType.NameOf(t.dtype), shape = t.shape, data_offsets = new[] { offset, offset + bytes } };
            offset += bytes;
        }
        var json = JsonSerializer.SerializeToUtf8Bytes(header);
        // The data section starts 8-byte aligned, as the reference implementation pads with spaces.
        var padded = (json.Length + 7) / 8 * 8;
        var tmp = path + ".tmp-" + Environment.ProcessId;
        try
        {
            using (var fs = new FileStream(tmp, FileMode.Create, FileAccess.Write))
            {
                fs.Write(BitConverter.GetBytes((ulong)padded));
                fs.Write(json);
                for (var i = json.Length; i < padded; i++) fs.WriteByte((byte)' ');
                foreach (var (_, t) in items)
                {
                    using var scope = NewDisposeScope();
                    var cpu = t.detach().cpu().contiguous();
                    if (cpu.NumberOfElements > 0) fs.Write(cpu.bytes);
                }
            }
            File.Move(tmp, path, overwrite: true);
        }
        finally
        {
            if (File.Exists(tmp)) File.Delete(tmp);
        }
    }

    /// <summary>Writes a state dict to a safetensors file; the same as the sequence overload.</summary>
    /// <param name="path">The target file.</param>
    /// <param name="tensors">Name → tensor.</param>
    /// <param name="metadata">Optional string map written as the header's <c>__metadata__</c>.</param>
    public static void Save(string path, IReadOnlyDictionary<string, Tensor> tensors,
        IReadOnlyDictionary<string, string>? metadata = null) =>
        Save(path, tensors.AsEnumerable(), metadata);
}
