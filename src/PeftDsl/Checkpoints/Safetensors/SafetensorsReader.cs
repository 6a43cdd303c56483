using System.Buffers;
using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using Microsoft.Win32.SafeHandles;
using PeftDsl.Errors;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftDsl.Checkpoints.Safetensors;

/// <summary>
/// A bounds-checked safetensors reader. The header is validated completely before any tensor is read:
/// a header that lies about offsets, sizes or shapes is rejected with the file and tensor named, never
/// turned into an out-of-range read or a giant allocation. Tensors are streamed into torch memory in chunks.
/// </summary>
public sealed class SafetensorsReader : IDisposable
{
    /// <summary>Headers are JSON listings; 100 MiB is far beyond any real one and keeps a lying length cheap.</summary>
    public const long MaxHeaderBytes = 100L << 20;

    private const int ChunkBytes = 16 << 20;
    private static readonly System.Text.UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);
    private readonly SafeFileHandle handle;
    private readonly long dataStart;

    private SafetensorsReader(string path, SafeFileHandle handle, long dataStart,
        Dictionary<string, SafetensorsEntry> entries, Dictionary<string, string> metadata)
    {
        Path = path;
        this.handle = handle;
        this.dataStart = dataStart;
        Entries = entries;
        Metadata = metadata;
    }

    /// <summary>The file this reader has open; error messages name it.</summary>
    public string Path { get; }

    /// <summary>Every tensor in the header by name (without <c>__metadata__</c>), each validated against the file.</summary>
    public IReadOnlyDictionary<string, SafetensorsEntry> Entries { get; }

    /// <summary>The optional <c>__metadata__</c> string map.</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>Opens a safetensors file and validates its whole header: dtypes, shapes and offsets that stay inside the
    /// file, do not overlap and cover the data section exactly. Tensor data is read later by <see cref="Read"/>.</summary>
    /// <exception cref="CheckpointException">The file is missing, truncated, or its header is invalid; the message names the
    /// file and the tensor.</exception>
    public static SafetensorsReader Open(string path)
    {
        if (!File.Exists(path))
            throw new CheckpointException($"{path}: file not found");
        var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read, FileOptions.RandomAccess);
        try
        {
            var fileLength = RandomAccess.GetLength(handle);
            if (fileLength < 8)
                throw Bad(path, $"truncated: {fileLength} bytes is shorter than the 8-byte header length");
            Span<byte> lengthBytes = stackalloc byte[8];
            RandomAccess.Read(handle, lengthBytes, 0);
            var headerLength = BinaryPrimitives.ReadUInt64LittleEndian(lengthBytes);
            if (headerLength > (ulong)(fileLength - 8))
                throw Bad(path, $"header length {headerLength} runs past the end of the file ({fileLength} bytes); truncated or not safetensors");
            if (headerLength > MaxHeaderBytes)
                throw Bad(path, $"header length {headerLength} exceeds the {MaxHeaderBytes}-byte limit");
            var header = new byte[headerLength];
            ReadExactly(handle, header, 8, path);
            var dataStart = 8 + (long)headerLength;
            var (entries, metadata) = ParseHeader(path, header, fileLength - dataStart);
            return new SafetensorsReader(path, handle, dataStart, entries, metadata);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>The header entry of tensor <paramref name="name"/>.</summary>
    /// <exception cref="CheckpointException">The file has no such tensor.</exception>
    public SafetensorsEntry Entry(string name) =>
        Entries.TryGetValue(name, out var e) ? e : throw new CheckpointException($"{Path}: no tensor named '{name}'");

    /// <summary>Reads one tensor on the CPU in its stored dtype.</summary>
    public Tensor Read(string name)
    {
        var entry = Entry(name);
        var tensor = empty(entry.Shape, entry.DType);
        if (entry.ByteLength == 0) return tensor;
        var elementSize = (int)(entry.ByteLength / entry.ElementCount);
        using var flat = tensor.view(-1);
        var chunkElements = ChunkBytes / elementSize;
        var buffer = ArrayPool<byte>.Shared.Rent((int)Math.Min(ChunkBytes, entry.ByteLength));
        try
        {
            for (long first = 0; first < entry.ElementCount; first += chunkElements)
            {
                var count = Math.Min(chunkElements, entry.ElementCount - first);
                var span = buffer.AsSpan(0, (int)(count * elementSize));
                ReadExactly(handle, span, dataStart + entry.Begin + first * elementSize, Path);
                using var slice = flat.narrow(0, first, count);
                slice.bytes = span;
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
        return tensor;
    }

    /// <summary>Closes the file handle; tensors already read stay valid.</summary>
    public void Dispose() => handle.Dispose();

    private static void ReadExactly(SafeFileHandle handle, Span<byte> into, long offset, string path)
    {
        while (into.Length > 0)
        {
            var n = RandomAccess.Read(handle, into, offset);
            if (n == 0)
                throw Bad(path, $"unexpected end of file at byte {offset}; the file is truncated");
            into = into[n..];
            offset += n;
        }
    }

    private static (Dictionary<string, SafetensorsEntry>, Dictionary<string, string>) ParseHeader(
        string path, byte[] header, long dataLength)
    {
        // JsonDocument checks UTF-8 only when a string is read; a header with broken bytes is refused here, whole.
        try
        {
            _ = StrictUtf8.GetCharCount(header);
        }
        catch (DecoderFallbackException)
        {
            throw Bad(path, "header is not valid UTF-8");
        }
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(header, new JsonDocumentOptions { MaxDepth = 8 });
        }
        catch (JsonException e)
        {
            throw Bad(path, $"header is not valid JSON ({e.Message})");
        }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
                throw Bad(path, "header is not a JSON object");
            var entries = new Dictionary<string, SafetensorsEntry>(StringComparer.Ordinal);
            var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var property in doc.RootElement.EnumerateObject())
            {
                if (property.Name == "__metadata__")
                {
                    ReadMetadata(path, property.Value, metadata);
                    continue;
                }
                if (entries.ContainsKey(property.Name))
                    throw Bad(path, $"tensor '{property.Name}' is listed twice in the header");
                entries[property.Name] = ParseEntry(path, property.Name, property.Value, dataLength);
            }
            CheckNoOverlap(path, entries.Values);
            CheckCovered(path, entries.Values, dataLength);
            return (entries, metadata);
        }
    }

    private static SafetensorsEntry ParseEntry(string path, string name, JsonElement e, long dataLength)
    {
        if (e.ValueKind != JsonValueKind.Object
            || !e.TryGetProperty("dtype", out var dtypeEl) || dtypeEl.ValueKind != JsonValueKind.String
            || !e.TryGetProperty("shape", out var shapeEl) || shapeEl.ValueKind != JsonValueKind.Array
            || !e.TryGetProperty("data_offsets", out var offEl) || offEl.ValueKind != JsonValueKind.Array)
            throw Bad(path, $"tensor '{name}': header entry needs 'dtype', 'shape' and 'data_offsets'");
        var dtypeName = dtypeEl.GetString()!;
        if (!SafetensorsDType.TryParse(dtypeName, out var dtype, out var elementSize))
            throw Bad(path, $"tensor '{name}': unsupported dtype '{dtypeName}' (supported: {SafetensorsDType.Supported})");
        var shape = new long[shapeEl.GetArrayLength()];
        var i = 0;
        long elements = 1;
        foreach (var d in shapeEl.EnumerateArray())
        {
            if (d.ValueKind != JsonValueKind.Number || !d.TryGetInt64(out var dim) || dim < 0)
                throw Bad(path, $"tensor '{name}': shape {shapeEl.GetRawText()} has a dimension that is not a non-negative integer");
            shape[i++] = dim;
            try { elements = checked(elements * dim); }
            catch (OverflowException) { throw Bad(path, $"tensor '{name}': shape {shapeEl.GetRawText()} overflows"); }
        }
        if (offEl.GetArrayLength() != 2)
            throw Bad(path, $"tensor '{name}': data_offsets must be [begin, end]");
        var begin = ReadOffset(path, name, offEl[0]);
        var end = ReadOffset(path, name, offEl[1]);
        if (end < begin)
            throw Bad(path, $"tensor '{name}': data_offsets [{begin}, {end}] end before they begin");
        if (end > dataLength)
            throw Bad(path, $"tensor '{name}': data_offsets [{begin}, {end}] run past the end of the data ({dataLength} bytes); the file is truncated or the header lies");
        long expectedBytes;
        try { expectedBytes = checked(elements * elementSize); }
        catch (OverflowException) { throw Bad(path, $"tensor '{name}': shape is too large"); }
        if (end - begin != expectedBytes)
            throw Bad(path, $"tensor '{name}': {dtypeName} {shapeEl.GetRawText()} needs {expectedBytes} bytes but data_offsets [{begin}, {end}] hold {end - begin}");
        return new SafetensorsEntry(name, dtype, shape, begin, end - begin);
    }

    private static long ReadOffset(string path, string name, JsonElement e) =>
        e.ValueKind == JsonValueKind.Number && e.TryGetInt64(out var v) && v >= 0
            ? v
            : throw Bad(path, $"tensor '{name}': data_offsets must be non-negative integers, found {e.GetRawText()}");

    private static void ReadMetadata(string path, JsonElement e, Dictionary<string, string> into)
    {
        if (e.ValueKind != JsonValueKind.Object)
            throw Bad(path, "__metadata__ must be an object of strings");
        foreach (var p in e.EnumerateObject())
        {
            if (p.Value.ValueKind != JsonValueKind.String)
                throw Bad(path, $"__metadata__ value '{p.Name}' must be a string");
            into[p.Name] = p.Value.GetString()!;
        }
    }

    private static void CheckNoOverlap(string path, IEnumerable<SafetensorsEntry> entries)
    {
        SafetensorsEntry? previous = null;
        foreach (var e in entries.Where(e => e.ByteLength > 0).OrderBy(e => e.Begin))
        {
            if (previous is not null && e.Begin < previous.Begin + previous.ByteLength)
                throw Bad(path, $"tensors '{previous.Name}' and '{e.Name}' overlap in the data section");
            previous = e;
        }
    }

    /// <summary>As the reference reader: the tensors fill the data section exactly, without gaps or trailing bytes,
    /// so bytes no header entry accounts for are a corrupt or tampered file, not something to ignore.</summary>
    private static void CheckCovered(string path, IEnumerable<SafetensorsEntry> entries, long dataLength)
    {
        long next = 0;
        foreach (var e in entries.Where(e => e.ByteLength > 0).OrderBy(e => e.Begin))
        {
            if (e.Begin != next)
                throw Bad(path, $"the data section has {e.Begin - next} bytes no tensor accounts for, before '{e.Name}'");
            next = e.Begin + e.ByteLength;
        }
        if (next != dataLength)
            throw Bad(path, $"{dataLength - next} bytes follow the last tensor's data; the file is corrupt or was appended to");
    }

    private static CheckpointException Bad(string path, string what) => new($"{path}: {what}");
}
