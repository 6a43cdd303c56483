using System.Text.Json;
using PeftDsl.Errors;

namespace PeftDsl.Cli.Parity;

/// <summary>One case of a fixture folder's manifest.json.</summary>
/// <param name="Kind">"causal" or "seq2seq".</param>
/// <param name="AdapterDir">The peft adapter folder, or null for a base-model case.</param>
/// <param name="Adapters">Named adapters saved in subfolders of <paramref name="AdapterDir"/> (multi-adapter cases).</param>
/// <param name="MixedBatchAdapters">One adapter name per row of the mixed batch (<c>__base__</c> for none).</param>
/// <param name="GreedyNewTokens">Generation cases: how many tokens greedy decoding added.</param>
public sealed record FixtureCase(string Name, string Family, string Kind, string? AdapterDir, IReadOnlyList<string> Adapters,
    IReadOnlyList<string>? MixedBatchAdapters = null, int? GreedyNewTokens = null);

/// <summary>A fixture folder in the format of tests/fixtures/hf-peft/README.md.</summary>
public sealed record FixtureManifest(string Directory, IReadOnlyList<FixtureCase> Cases)
{
    /// <summary>Reads <c>manifest.json</c> of the fixture folder <paramref name="directory"/>; a missing folder or manifest,
    /// invalid JSON or a case without its string fields is a bad-input error.</summary>
    public static FixtureManifest Load(string directory)
    {
        var path = Path.Combine(directory, "manifest.json");
        if (!System.IO.Directory.Exists(directory))
            throw new PeftDslException($"{directory}: fixture folder not found");
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
                List<string>? Names(string field) => c.TryGetProperty(field, out var n) && n.ValueKind == JsonValueKind.Array
                    ? n.EnumerateArray().Select(x => x.ValueKind == JsonValueKind.String
                        ? x.GetString()!
                        : throw new PeftDslException($"{path}: \"{field}\" must list names")).ToList()
                    : null;
                int? greedy = c.TryGetProperty("greedy_new_tokens", out var g) && g.ValueKind == JsonValueKind.Number ? g.GetInt32() : null;
                result.Add(new FixtureCase(Field("name"), Field("family"), Field("kind"), adapter, Names("adapters") ?? [],
                    Names("mixed_batch_adapters"), greedy));
            }
            return new FixtureManifest(directory, result);
        }
        catch (JsonException e)
        {
            throw new PeftDslException($"{path}: not valid JSON ({e.Message})", e);
        }
    }

    /// <summary>The base model folder of the case: <c>FAMILY-base</c> in the fixture folder.</summary>
    public string BaseModelDirectory(FixtureCase c) => Path.Combine(Directory, c.Family + "-base");

    /// <summary>The case's base model, of the kind the manifest says (a mismatch with config.json is an error).</summary>
    public Runtime.LanguageModel LoadBaseModel(FixtureCase c) => c.Kind == "causal"
        ? Models.StockModels.LoadCausal(BaseModelDirectory(c))
        : Models.StockModels.LoadSeq2Seq(BaseModelDirectory(c));

    /// <summary>The reference outputs of the case: <c>NAME.expected.safetensors</c> in the fixture folder.</summary>
    public string ExpectedFile(FixtureCase c) => Path.Combine(Directory, c.Name + ".expected.safetensors");

    /// <summary>LoRA cases: logits after merge_and_unload, when the generator wrote them.</summary>
    public string MergedFile(FixtureCase c) => Path.Combine(Directory, c.Name + ".merged.safetensors");

    /// <summary>The case's peft adapter folder as a full path; a case without <c>adapter_dir</c> is a bad-input error.</summary>
    public string AdapterDirectory(FixtureCase c) => Path.Combine(Directory, c.AdapterDir ?? throw new PeftDslException($"case {c.Name} has no adapter_dir"));

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
