using System.Text.Json;
using PeftDsl.Errors;

namespace PeftDsl.Cli.Parity;

/// <summary>One case of a fixture folder's manifest.json.</summary>
/// <param name="Kind">"causal" or "seq2seq".</param>
/// <param name="AdapterDir">The peft adapter folder, or null for a base-model case.</param>
/// <param name="Adapters">Named adapters saved in subfolders of <paramref name="AdapterDir"/> (multi-adapter cases).</param>
public sealed record FixtureCase(string Name, string Family, string Kind, string? AdapterDir, IReadOnlyList<string> Adapters);

/// <summary>A fixture folder in the format of tests/fixtures/hf-peft/README.md.</summary>
public sealed record FixtureManifest(string Directory, IReadOnlyList<FixtureCase> Cases)
{
    public static FixtureManifest Load(string directory)
    {
        var path = Path.Combine(directory, "manifest.json");
        if (!File.Exists(path))
            throw new PeftDslException($"{directory}: no manifest.json; expected a fixture folder as described in tests/fixtures/hf-peft/README.md");
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(path));
            if (!doc.RootElement.TryGetProperty("cases", out var cases) || cases.ValueKind != JsonValueKind.Array)
                throw new PeftDslException($"{path}: no \"cases\" array");
            var result = new List<FixtureCase>();
            foreach (var c in cases.EnumerateArray())
            {
                string Field(string name) => c.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String
                    ? v.GetString()!
                    : throw new PeftDslException($"{path}: a case lacks the string field \"{name}\"");
                var adapter = c.TryGetProperty("adapter_dir", out var a) && a.ValueKind == JsonValueKind.String ? a.GetString() : null;
                var names = c.TryGetProperty("adapters", out var n) && n.ValueKind == JsonValueKind.Array
                    ? n.EnumerateArray().Select(x => x.GetString() ?? "").ToList()
                    : [];
                result.Add(new FixtureCase(Field("name"), Field("family"), Field("kind"), adapter, names));
            }
            return new FixtureManifest(directory, result);
        }
        catch (JsonException e)
        {
            throw new PeftDslException($"{path}: not valid JSON ({e.Message})", e);
        }
    }

    public string BaseModelDirectory(FixtureCase c) => Path.Combine(Directory, c.Family + "-base");

    public string ExpectedFile(FixtureCase c) => Path.Combine(Directory, c.Name + ".expected.safetensors");

    /// <summary>The distinct peft_type values of the case's adapters; empty for a base case.</summary>
    public IReadOnlyList<string> PeftTypes(FixtureCase c)
    {
        if (c.AdapterDir is null) return [];
        var folders = c.Adapters.Count == 0
            ? [Path.Combine(Directory, c.AdapterDir)]
            : c.Adapters.Select(a => Path.Combine(Directory, c.AdapterDir, a)).ToList();
        return folders.Select(ReadPeftType).Distinct().ToList();
    }

    private static string ReadPeftType(string folder)
    {
        var path = Path.Combine(folder, "adapter_config.json");
        if (!File.Exists(path)) throw new PeftDslException($"{path}: adapter_config.json not found");
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(path));
            return doc.RootElement.TryGetProperty("peft_type", out var t) && t.ValueKind == JsonValueKind.String
                ? t.GetString()!
                : throw new PeftDslException($"{path}: no \"peft_type\"");
        }
        catch (JsonException e)
        {
            throw new PeftDslException($"{path}: not valid JSON ({e.Message})", e);
        }
    }
}
