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
    public const string ConfigFile = "config.json";
    public const string SingleFile = "model.safetensors";
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

    public string Directory { get; }

    public ConfigJson Config { get; }

    public IEnumerable<string> Keys => byKey.Keys;

    public static ConfigJson ReadConfig(string directory)
    {
        RequireDirectory(directory);
        var path = System.IO.Path.Combine(directory, ConfigFile);
        if (!File.Exists(path))
            throw new CheckpointException($"{directory}: no {ConfigFile} in the checkpoint folder");
        return ConfigJson.Load(path);
    }

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

    public SafetensorsEntry Entry(string key) => Reader(key).Entry(key);

    public Tensor Read(string key) => Reader(key).Read(key);

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
            throw new CheckpointException($"{index}: not valid JSON ({e.Message})", e);
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
