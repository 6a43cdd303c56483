using System.Text.Json;
using PeftDsl.Checkpoints.Safetensors;
using PeftDsl.Config;
using PeftDsl.Errors;
using static TorchSharp.torch;

namespace PeftDsl.Checkpoints;

/// <summary>
/// A Hugging Face model folder: <c>config.json</c> plus <c>model.safetensors</c>, or shards listed by
/// <c>model.safetensors.index.json</c>. Opening validates every header; tensors are read on demand.
/// </summary>
public sealed class CheckpointFolder : IDisposable
{
    /// <summary>The model config every checkpoint folder must have (<c>config.json</c>).</summary>
    public const string ConfigFile = "config.json";
    /// <summary>The single-file weights (<c>model.safetensors</c>), tried before a sharded index.</summary>
    public const string SingleFile = "model.safetensors";
    /// <summary>The shard index of a sharded checkpoint; its <c>weight_map</c> maps each tensor key to a shard file in the folder.</summary>
    public const string IndexFile = "model.safetensors.index.json";

    private readonly List<SafetensorsReader> readers;
    private readonly Dictionary<string, SafetensorsReader> byKey;

    private CheckpointFolder(string directory, ConfigJson config, List<SafetensorsReader> readers,
        Dictionary<string, SafetensorsReader> byKey)
    {
        Directory = directory;
        Config = config;
        this.readers = readers;
        this.byKey = byKey;
    }

    /// <summary>The folder as it was given to <see cref="Open"/>; error messages name it.</summary>
    public string Directory { get; }

    /// <summary>The folder's parsed <c>config.json</c>, for the generated <c>FromJson</c> binders.</summary>
    public ConfigJson Config { get; }

    /// <summary>Every tensor key (state-dict name) in the checkpoint, across all shards; each is validated already.</summary>
    public IEnumerable<string> Keys => byKey.Keys;

    /// <summary>Reads only <c>config.json</c> from a checkpoint folder, without opening any weights (enough to list
    /// the expected keys or build an uninitialised model).</summary>
    /// <exception cref="CheckpointException">The folder or its <c>config.json</c> is missing.</exception>
    /// <exception cref="ConfigException">The config is not a valid JSON object.</exception>
    public static ConfigJson ReadConfig(string directory)
    {
        RequireDirectory(directory);
        var path = System.IO.Path.Combine(directory, ConfigFile);
        if (!File.Exists(path))
            throw new CheckpointException($"{directory}: no {ConfigFile} in the checkpoint folder");
        return ConfigJson.Load(path);
    }

    /// <summary>Opens a Hugging Face checkpoint folder: <c>config.json</c> plus <c>model.safetensors</c> or the shards
    /// of <c>model.safetensors.index.json</c>. Every header is validated now; tensor data is read on demand. A
    /// <c>pytorch_model.bin</c> is never read (pickle can run code): convert it to safetensors.</summary>
    /// <exception cref="CheckpointException">A file is missing, malformed, or an index entry names a shard that does not hold its key.</exception>
    public static CheckpointFolder Open(string directory)
    {
        var config = ReadConfig(directory);
        var single = System.IO.Path.Combine(directory, SingleFile);
        var index = System.IO.Path.Combine(directory, IndexFile);
        var readers = new List<SafetensorsReader>();
        try
        {
            Dictionary<string, SafetensorsReader> byKey;
            if (File.Exists(single))
            {
                var reader = SafetensorsReader.Open(single);
                readers.Add(reader);
                byKey = reader.Entries.Keys.ToDictionary(k => k, _ => reader, StringComparer.Ordinal);
            }
            else if (File.Exists(index))
            {
                byKey = OpenShards(directory, index, readers);
            }
            else
            {
                var hint = File.Exists(System.IO.Path.Combine(directory, "pytorch_model.bin"))
                    ? " (pytorch_model.bin is not read: pickle files can run code; convert it to safetensors)"
                    : "";
                throw new CheckpointException($"{directory}: neither {SingleFile} nor {IndexFile} found{hint}");
            }
            return new CheckpointFolder(directory, config, readers, byKey);
        }
        catch
        {
            foreach (var r in readers) r.Dispose();
            throw;
        }
    }

    /// <summary>The header entry (dtype, shape, byte range) of <paramref name="key"/>, from whichever shard holds it; reads no data.</summary>
    /// <exception cref="CheckpointException">No tensor has that key.</exception>
    public SafetensorsEntry Entry(string key) => Reader(key).Entry(key);

    /// <summary>Reads tensor <paramref name="key"/> on the CPU in its stored dtype and checkpoint layout (a Conv1D
    /// weight is still [in, out]); the caller owns and disposes it.</summary>
    /// <exception cref="CheckpointException">No tensor has that key, or its file is truncated.</exception>
    public Tensor Read(string key) => Reader(key).Read(key);

    /// <summary>Closes every shard file handle; <see cref="Read"/> no longer works afterwards.</summary>
    public void Dispose()
    {
        foreach (var r in readers) r.Dispose();
    }

    private SafetensorsReader Reader(string key) =>
        byKey.TryGetValue(key, out var r) ? r : throw new CheckpointException($"{Directory}: no tensor '{key}'");

    private static Dictionary<string, SafetensorsReader> OpenShards(string directory, string index, List<SafetensorsReader> readers)
    {
        Dictionary<string, string> weightMap;
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(index));
            if (!doc.RootElement.TryGetProperty("weight_map", out var map) || map.ValueKind != JsonValueKind.Object)
                throw new CheckpointException($"{index}: no \"weight_map\" object");
            weightMap = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var p in map.EnumerateObject())
            {
                if (p.Value.ValueKind != JsonValueKind.String)
                    throw new CheckpointException($"{index}: weight_map entry '{p.Name}' must name a file");
                weightMap[p.Name] = p.Value.GetString()!;
            }
        }
        catch (JsonException e)
        {
            throw new CheckpointException($"{index}: not valid JSON ({Errors.JsonErrors.Describe(e)})", e);
        }
        var shards = new Dictionary<string, SafetensorsReader>(StringComparer.Ordinal);
        var byKey = new Dictionary<string, SafetensorsReader>(StringComparer.Ordinal);
        foreach (var (key, file) in weightMap)
        {
            if (file.Contains('/') || file.Contains('\\') || file == "..")
                throw new CheckpointException($"{index}: shard name '{file}' for '{key}' must be a plain file name in the folder");
            if (!shards.TryGetValue(file, out var reader))
            {
                var shardPath = System.IO.Path.Combine(directory, file);
                if (!File.Exists(shardPath))
                    throw new CheckpointException($"{index}: shard '{file}' (holding '{key}') is missing from {directory}");
                reader = SafetensorsReader.Open(shardPath);
                readers.Add(reader);
                shards[file] = reader;
            }
            if (!reader.Entries.ContainsKey(key))
                throw new CheckpointException($"{index}: '{key}' is mapped to {file}, which does not contain it");
            byKey[key] = reader;
        }
        return byKey;
    }

    private static void RequireDirectory(string directory)
    {
        if (!System.IO.Directory.Exists(directory))
            throw new CheckpointException($"{directory}: checkpoint folder not found");
    }
}
