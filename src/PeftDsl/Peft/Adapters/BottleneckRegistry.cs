using PeftDsl.Checkpoints;
using PeftDsl.Checkpoints.Safetensors;
using PeftDsl.Errors;
using PeftDsl.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftDsl.Peft.Adapters;

/// <summary>
/// The bottleneck adapters of one model, by name: add, load, save, activate, delete. Files have peft's layout
/// (<c>adapter_config.json</c> with <c>peft_type</c> <c>PEFTDSL_BOTTLENECK</c>, and <c>adapter_model.safetensors</c> with
/// keys <c>base_model.model.{site}.bottleneck.{linear_in|linear_out|layer_norm}.{weight|bias}</c>, the adapter name
/// left out as peft leaves it out).
/// </summary>
public sealed class BottleneckRegistry
{
    /// <summary>The config file's name, <c>adapter_config.json</c>.</summary>
    public const string ConfigFile = AdapterFolder.ConfigFile;
    /// <summary>The weights file's name, <c>adapter_model.safetensors</c>.</summary>
    public const string WeightsFile = AdapterFolder.WeightsFile;
    private const string Prefix = "base_model.model.";

    private readonly LanguageModel model;
    private readonly Dictionary<string, BottleneckConfig> configs = new(StringComparer.Ordinal);
    private readonly List<string> active = [];

    internal BottleneckRegistry(LanguageModel model) => this.model = model;

    /// <summary>The bottleneck adapters' names (a copy: deleting while iterating is safe).</summary>
    public IReadOnlyList<string> Names => configs.Keys.ToList();

    /// <summary>The bottleneck adapters every row runs when a call names none; the first one added becomes active.</summary>
    public IReadOnlyList<string> Active => active.ToList();

    /// <summary>True when a bottleneck adapter of this name exists.</summary>
    public bool Contains(string name) => configs.ContainsKey(name);

    /// <summary>The adapter's configuration; an unknown name throws, listing the existing ones.</summary>
    public BottleneckConfig this[string name] => configs.TryGetValue(name, out var c) ? c : throw Unknown(name);

    /// <summary>Every adapter site of the model with its path, in module order.</summary>
    public IReadOnlyList<(string Path, AdapterSite Site)> Sites() =>
        CheckpointLayout.ModulesWithRoot(model).Where(m => m.Module is AdapterSite).Select(m => (m.Path, (AdapterSite)m.Module)).ToList();

    /// <summary>Adds a new adapter (identity at first: the up projection is zero); the base is frozen, the adapter trainable.</summary>
    public void Add(string name, BottleneckConfig config, string source = "BottleneckConfig")
    {
        var targets = Prepare(name, ref config, source);
        try
        {
            foreach (var (_, site, owner) in Owners(targets, config))
                if (owner is null) site.Add(name, Placed(new BottleneckLayer(Dim, config, initialize: true)));
                else site.Borrow(name, owner.Adapter(name));
        }
        catch
        {
            foreach (var (_, site) in targets) site.Remove(name);
            throw;
        }
        Register(name, config, trainable: true);
    }

    /// <summary>Loads a folder written by <see cref="Save"/>; every tensor must fit its site.</summary>
    public void Load(string directory, string name = "default", bool trainable = false)
    {
        if (!Directory.Exists(directory)) throw new PeftDslException($"{directory}: adapter folder not found");
        var configPath = Path.Combine(directory, ConfigFile);
        var config = BottleneckConfigJson.Parse(Lora.LoraConfigJson.ReadObject(configPath), configPath);
        var weights = Path.Combine(directory, WeightsFile);
        if (!File.Exists(weights)) throw new PeftDslException($"{directory}: no {WeightsFile}");
        var targets = Prepare(name, ref config, configPath);
        using var reader = SafetensorsReader.Open(weights);
        var owners = Owners(targets, config);
        var layers = owners.Where(t => t.Owner is null).Select(t => (t.Path, t.Site, Layer: new BottleneckLayer(Dim, config, initialize: false))).ToList();
        var expected = layers.SelectMany(l => l.Layer.named_parameters().Select(p => (Key: $"{Prefix}{l.Path}.bottleneck.{p.name}", p.parameter))).ToList();
        try
        {
            AdapterFolder.CheckFits(reader, weights, expected.ToDictionary(e => e.Key, e => (e.parameter.shape, "")));
        }
        catch
        {
            foreach (var l in layers) l.Layer.Dispose();
            throw;
        }
        using (no_grad())
            foreach (var (key, p) in expected)
            {
                using var scope = NewDisposeScope();
                p.copy_(reader.ReadFinite(key).to(p.dtype));
            }
        foreach (var (_, site, layer) in layers) site.Add(name, Placed(layer));
        foreach (var (_, site, owner) in owners.Where(t => t.Owner is not null)) site.Borrow(name, owner!.Adapter(name));
        Register(name, config, trainable);
    }

    /// <summary>Writes the adapter in peft's folder layout (<c>adapter_config.json</c>, <c>adapter_model.safetensors</c>),
    /// replacing <paramref name="directory"/> atomically.</summary>
    public void Save(string directory, string name = "default") => AtomicFolder.Write(directory, staging => WriteFiles(staging, name));

    /// <summary>Writes the adapter's two files into an existing folder, each file atomically.</summary>
    public void WriteFiles(string folder, string name)
    {
        var config = this[name];
        using var scope = NewDisposeScope();
        var tensors = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        // A tied adapter is written once, at the sites that own it.
        foreach (var (path, site) in Sites().Where(s => s.Site.Owns(name)))
            foreach (var (param, value) in site.Adapter(name).named_parameters())
                tensors[$"{Prefix}{path}.bottleneck.{param}"] = value.detach();
        Directory.CreateDirectory(folder);
        AdapterFolder.Write(folder, BottleneckConfigJson.Write(config), tensors);
    }

    /// <summary>Makes <paramref name="names"/> the bottleneck adapters every row runs (their deltas add); none: no bottleneck adapter acts.</summary>
    public void SetActive(params string[] names)
    {
        foreach (var n in names) _ = this[n];
        active.Clear();
        active.AddRange(names.Distinct());
    }

    /// <summary>Sets <c>requires_grad</c> on every parameter of the adapter's layers (a tied layer once).</summary>
    public void SetTrainable(string name, bool trainable)
    {
        foreach (var (_, site) in Sites().Where(s => s.Site.Has(name)))
            foreach (var p in site.Adapter(name).parameters()) p.requires_grad = trainable;
    }

    /// <summary>Removes the adapter from every site and disposes its layers; when the last active one goes, the first
    /// remaining adapter becomes active.</summary>
    public void Delete(string name)
    {
        _ = this[name];
        foreach (var (_, site) in Sites()) site.Remove(name);
        configs.Remove(name);
        if (active.Remove(name) && active.Count == 0 && configs.Count > 0) active.Add(configs.Keys.First());
    }

    /// <summary>The sublayers' output width: the attention output projection's.</summary>
    private long Dim => model.Adapters.Linears().FirstOrDefault(l => l.Linear.Role == Dsl.ProjectionRole.Output).Linear?.OutFeatures
                        ?? throw new PeftDslException($"{model.GetName()} has no attention output projection to size a bottleneck adapter from");

    private BottleneckLayer Placed(BottleneckLayer layer)
    {
        var weight = model.Adapters.Linears()[0].Linear.weight;
        var dtype = weight.dtype is ScalarType.BFloat16 or ScalarType.Float16 ? ScalarType.Float32 : weight.dtype;
        layer.to(dtype).to(weight.device);
        return layer;
    }

    private IReadOnlyList<(string Path, AdapterSite Site)> Prepare(string name, ref BottleneckConfig config, string source)
    {
        model.CheckNameFree(name);
        config = config.Validate(source) with { TaskType = model is Seq2SeqLanguageModel ? "SEQ_2_SEQ_LM" : "CAUSAL_LM" };
        var all = Sites();
        if (all.Count == 0) throw new PeftDslException($"{source}: {model.GetName()} declares no adapter site");
        var known = all.Select(s => s.Site.Name).Distinct().ToList();
        if (config.Sites?.FirstOrDefault(s => !known.Contains(s)) is { } unknown)
            throw new PeftDslException($"{source}: '{unknown}' is not an adapter site of the model; its sites are {string.Join(", ", known)}");
        var sites = config.Sites;
        var layers = config.Layers;
        if (layers?.FirstOrDefault(l => all.All(s => s.Site.Layer != l), -1) is { } missing && missing != -1)
            throw new PeftDslException($"{source}: layer {missing} does not exist (the model's blocks are 0 … {all.Max(s => s.Site.Layer)})");
        var chosen = all.Where(s => (sites is null || sites.Contains(s.Site.Name)) && (layers is null || layers.Contains(s.Site.Layer))).ToList();
        if (chosen.Count == 0) throw new PeftDslException($"{source}: the sites and layers select no adapter site of the model");
        if (config.Placement == BottleneckPlacement.Nemo)
            foreach (var (path, site) in chosen) site.OutputProjection ??= OutputProjection(path, site, source);
        return chosen;
    }

    /// <summary>The projection whose output (with its bias) reaches <paramref name="site"/>: in the site's block, the
    /// self-attention's output projection, the cross-attention's, or the MLP's down projection.</summary>
    private Modules.PeftLinear OutputProjection(string path, AdapterSite site, string source)
    {
        var block = path[..(path.LastIndexOf('.') + 1)];
        bool Fits(Modules.PeftLinear l) => site.Name.StartsWith(SiteNames.MlpAdapter, StringComparison.Ordinal) ? l.Role == Dsl.ProjectionRole.Down
            : l.Role == Dsl.ProjectionRole.Output && l.CrossAttention == site.Name.StartsWith(SiteNames.CrossAttentionAdapter, StringComparison.Ordinal);
        var found = model.Adapters.Linears().Where(l => l.Path.StartsWith(block, StringComparison.Ordinal) && Fits(l.Linear)).ToList();
        return found.Count == 1 ? found[0].Linear
            : throw new PeftDslException($"{source}: NeMo's placement reads the sublayer's output before its bias, but {path} follows " +
                                         (found.Count == 0 ? "no output projection" : $"{found.Count} candidate projections ({string.Join(", ", found.Select(f => f.Path))})") +
                                         " in its block; use the sequential placement");
    }

    /// <summary>Each chosen site with the site whose layer it shares: null where it gets its own (every site untied;
    /// the first block's site of each name when tied).</summary>
    private static List<(string Path, AdapterSite Site, AdapterSite? Owner)> Owners(IReadOnlyList<(string Path, AdapterSite Site)> targets, BottleneckConfig config)
    {
        var first = new Dictionary<string, AdapterSite>(StringComparer.Ordinal);
        var result = new List<(string, AdapterSite, AdapterSite?)>();
        foreach (var (path, site) in targets)
        {
            // Encoder and decoder sites share a name but not a stack: each stack ties its own blocks.
            var key = config.TieWeights ? StackOf(path) + site.Name : path;
            if (first.TryGetValue(key, out var owner)) result.Add((path, site, owner));
            else
            {
                first[key] = site;
                result.Add((path, site, null));
            }
        }
        return result;
    }

    /// <summary>The path up to the block index (<c>encoder.block.</c>, <c>transformer.h.</c>).</summary>
    private static string StackOf(string path)
    {
        var parts = path.Split('.');
        var index = Array.FindIndex(parts, p => p.Length > 0 && p.All(char.IsAsciiDigit));
        return index < 0 ? "" : string.Join('.', parts.Take(index)) + ".";
    }

    private void Register(string name, BottleneckConfig config, bool trainable)
    {
        configs[name] = config;
        model.FreezeBase();
        SetTrainable(name, trainable);
        if (active.Count == 0) active.Add(name);
    }

    private PeftDslException Unknown(string name) =>
        new($"bottleneck adapter '{name}' does not exist (bottleneck adapters: {(configs.Count == 0 ? "none" : string.Join(", ", configs.Keys))})");
}
