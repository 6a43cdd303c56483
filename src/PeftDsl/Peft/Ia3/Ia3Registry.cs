using PeftDsl.Checkpoints;
using PeftDsl.Checkpoints.Safetensors;
using PeftDsl.Errors;
using PeftDsl.Modules;
using PeftDsl.Runtime;
using static TorchSharp.torch;

namespace PeftDsl.Peft.Ia3;

/// <summary>
/// The IA3 adapters of one model, by name (peft's <c>PeftModel</c> API for IA3): add, load, save, activate (several
/// multiply), merge, unmerge, delete. Adapter names are shared with LoRA adapters and prompt tasks: each is unique.
/// </summary>
public sealed class Ia3Registry
{
    /// <summary>The weights file's name, <c>adapter_model.safetensors</c>.</summary>
    public const string WeightsFile = AdapterFolder.WeightsFile;
    /// <summary>The config file's name, <c>adapter_config.json</c>.</summary>
    public const string ConfigFile = AdapterFolder.ConfigFile;
    private const string Prefix = "base_model.model.";
    private const string Suffix = ".ia3_l";

    private readonly LanguageModel model;
    private readonly Dictionary<string, Ia3Config> configs = new(StringComparer.Ordinal);
    private readonly List<string> active = [];

    internal Ia3Registry(LanguageModel model) => this.model = model;

    /// <summary>The IA3 adapters' names (a copy: deleting while iterating is safe).</summary>
    public IReadOnlyList<string> Names => configs.Keys.ToList();

    /// <summary>The adapters every row runs when a call names none.</summary>
    public IReadOnlyList<string> Active => active.ToList();

    /// <summary>True when an IA3 adapter of this name exists.</summary>
    public bool Contains(string name) => configs.ContainsKey(name);

    /// <summary>The adapter's configuration (targets filled in as peft fills them); an unknown name throws, listing the existing ones.</summary>
    public Ia3Config this[string name] => configs.TryGetValue(name, out var c) ? c : throw Unknown(name);

    /// <summary>Adds a fresh adapter (ones, or N(0, 1) without <c>init_ia3_weights</c>); the base is frozen, the
    /// adapter trainable, and the first adapter becomes active.</summary>
    public void Add(string name, Ia3Config config, string source = "Ia3Config")
    {
        var targets = Prepare(name, ref config, source);
        if (config.Placement == Ia3Placement.Peft) Ia3Targets.RequireEachTarget(config, Linears(), source);
        try
        {
            foreach (var t in targets)
            {
                using var value = config.InitIa3Weights ? ones(t.Shape, dtype: AdapterDType(t.Linear)) : randn(t.Shape, dtype: AdapterDType(t.Linear));
                t.Linear.Ia3.Add(name, t.Feedforward, value, t.Slice);
            }
        }
        catch
        {
            foreach (var t in targets) t.Linear.Ia3.Remove(name);
            throw;
        }
        Register(name, config, trainable: true);
    }

    /// <summary>Loads a peft IA3 folder; frozen unless <paramref name="trainable"/>. Shapes are checked before any
    /// tensor is created, and every tensor must have its module.</summary>
    public void Load(string directory, string name = "default", bool trainable = false)
    {
        if (!Directory.Exists(directory)) throw new PeftDslException($"{directory}: adapter folder not found");
        var configPath = Path.Combine(directory, ConfigFile);
        var config = Ia3ConfigJson.Parse(Lora.LoraConfigJson.ReadObject(configPath), configPath);
        var weights = Path.Combine(directory, WeightsFile);
        if (!File.Exists(weights)) throw new PeftDslException($"{directory}: no {WeightsFile}");
        var targets = Prepare(name, ref config, configPath);
        using var reader = SafetensorsReader.Open(weights);
        // The file holds peft's whole-projection vectors; a NeMo-placed adapter's columns outside its slice are ones.
        AdapterFolder.CheckFits(reader, weights, targets.ToDictionary(t => Prefix + t.Path + Suffix,
            t => t.Feedforward ? (new[] { 1L, t.Linear.InFeatures }, "feed-forward: scales the input") : ([t.Linear.OutFeatures, 1L], "scales the output")));
        try
        {
            foreach (var t in targets)
            {
                using var scope = NewDisposeScope();
                var key = Prefix + t.Path + Suffix;
                var value = reader.ReadFinite(key).to(AdapterDType(t.Linear));
                if (t.Slice is { } slice)
                {
                    var outside = cat([value[..(int)slice.Start], value[(int)(slice.Start + slice.Length)..]]);
                    if (outside.numel() > 0 && !outside.eq(1).all().item<bool>())
                        throw new PeftDslException($"{weights}: {key} scales columns outside the keys and values, which NeMo's IA3 placement does not train (they must be 1)");
                    value = value[(int)slice.Start..(int)(slice.Start + slice.Length)];
                }
                t.Linear.Ia3.Add(name, t.Feedforward, value, t.Slice);
            }
        }
        catch
        {
            foreach (var t in targets) t.Linear.Ia3.Remove(name);   // half an adapter must not stay behind
            throw;
        }
        Register(name, config, trainable);
    }

    /// <summary>Writes the adapter in peft's format, atomically.</summary>
    public void Save(string directory, string name = "default") => AtomicFolder.Write(directory, staging => WriteFiles(staging, name));

    /// <summary>Writes the adapter's two files into an existing folder, each file atomically.</summary>
    public void WriteFiles(string folder, string name)
    {
        var config = this[name];
        using var scope = NewDisposeScope();
        // Whole-projection vectors, as peft stores them (a NeMo-placed slice padded with ones), so peft loads the file.
        var tensors = Linears().Where(l => l.Linear.Ia3.Has(name))
            .ToDictionary(l => Prefix + l.Path + Suffix, l => l.Linear.Ia3.Full(name).detach().view(l.Linear.Ia3.Vector(name).shape[0] == 1 ? [1, -1] : [-1, 1]));
        Directory.CreateDirectory(folder);
        AdapterFolder.Write(folder, Ia3ConfigJson.Write(config), tensors);
    }

    /// <summary>Makes <paramref name="names"/> the IA3 adapters every row runs (their vectors multiply); merged adapters are unmerged first.</summary>
    public void SetActive(params string[] names)
    {
        foreach (var n in names) _ = this[n];
        Unmerge();
        active.Clear();
        active.AddRange(names.Distinct());
    }

    /// <summary>Sets <c>requires_grad</c> on the adapter's vector at every projection it scales.</summary>
    public void SetTrainable(string name, bool trainable)
    {
        foreach (var (_, linear) in Linears())
            if (linear.Ia3.Has(name)) linear.Ia3.Vector(name).requires_grad = trainable;
    }

    /// <summary>Folds the active adapters into the weights; <see cref="Unmerge"/> restores them exactly.</summary>
    public void Merge() => Merge(keepOriginal: true);

    private void Merge(bool keepOriginal)
    {
        if (!model.Adapters.Enabled) throw new PeftDslException("adapters are disabled: Enable() before merging");
        foreach (var (_, linear) in Linears())
            foreach (var n in active) linear.Ia3.Merge(n, keepOriginal);
    }

    /// <summary>True when an adapter is folded into the weights (a mixed batch would then be wrong for other rows).</summary>
    public bool AnyMerged => Linears().Any(l => l.Linear.Ia3.AnyMerged);

    /// <summary>Restores every projection's weights as they were before the first merge, bit for bit; nothing to do when none is merged.</summary>
    public void Unmerge()
    {
        foreach (var (_, linear) in Linears()) linear.Ia3.Unmerge();
    }

    /// <summary>Merges the active adapters and removes every IA3 adapter (peft's <c>merge_and_unload</c>).</summary>
    public void MergeAndUnload()
    {
        if (model.Adapters.Enabled) Merge(keepOriginal: false);
        foreach (var (_, linear) in Linears())
        {
            linear.Ia3.ForgetMerged();
            foreach (var n in linear.Ia3.Adapters.ToList()) linear.Ia3.Remove(n);
        }
        configs.Clear();
        active.Clear();
    }

    /// <summary>Removes the adapter's vectors from every projection (unmerging first); when the last active one goes, the
    /// first remaining adapter becomes active.</summary>
    public void Delete(string name)
    {
        _ = this[name];
        Unmerge();
        foreach (var (_, linear) in Linears()) linear.Ia3.Remove(name);
        configs.Remove(name);
        if (active.Remove(name) && active.Count == 0 && configs.Count > 0) active.Add(configs.Keys.First());
    }

    private IReadOnlyList<(string Path, PeftLinear Linear)> Linears() => model.Adapters.Linears();

    private IReadOnlyList<Ia3Target> Prepare(string name, ref Ia3Config config, string source)
    {
        PromptsCheck(name);
        foreach (var (_, linear) in Linears()) linear.RequireFullPrecision($"{source}: IA3");
        config = config.Validate(source) with { TaskType = model is Seq2SeqLanguageModel ? "SEQ_2_SEQ_LM" : "CAUSAL_LM" };
        IReadOnlyList<Ia3Target> targets;
        if (config.Placement == Ia3Placement.Nemo)
        {
            targets = Ia3Targets.ResolveNemo(model.Sites(), Linears(), source);
            var named = config with
            {
                TargetModules = Ia3Targets.PeftNames(targets.Select(t => t.Path), Linears()),
                FeedforwardModules = Ia3Targets.PeftNames(targets.Where(t => t.Feedforward).Select(t => t.Path), Linears()),
            };
            // A saved file names its modules in peft's terms; they must be the model's sites.
            if (config.TargetModules is not null)
            {
                var listed = Ia3Targets.Resolve(config with { FeedforwardModules = config.FeedforwardModules ?? [] }, Linears(), source);
                if (!listed.Select(t => (t.Path, t.Feedforward)).OrderBy(t => t.Path).SequenceEqual(targets.Select(t => (t.Path, t.Feedforward)).OrderBy(t => t.Path)))
                    throw new PeftDslException($"{source}: target_modules and feedforward_modules do not name this model's IA3 sites ({string.Join(", ", named.TargetModules!)}), which NeMo's placement uses");
            }
            config = named;
        }
        else
        {
            config = Ia3Targets.WithDefaults(config, model.ConfigModelType, source);
            targets = Ia3Targets.Resolve(config, Linears(), source);
        }
        if (targets.FirstOrDefault(t => !t.Linear.Lora.IsEmpty) is { } both)
            throw new PeftDslException($"{source}: {both.Path} already carries a LoRA adapter; IA3 and LoRA on one projection are not combined yet");
        config = config with { FanInFanOut = targets.Any(t => t.Linear.Layout == Dsl.WeightLayout.Conv1D) };
        return targets;
    }

    private void Register(string name, Ia3Config config, bool trainable)
    {
        configs[name] = config;
        model.FreezeBase();
        SetTrainable(name, trainable);
        if (active.Count == 0) active.Add(name);
    }

    private void PromptsCheck(string name) => model.CheckNameFree(name);

    /// <summary>Vectors train in fp32 on a bf16/fp16 base, as adapters do.</summary>
    private static ScalarType AdapterDType(PeftLinear linear) =>
        linear.weight.dtype is ScalarType.BFloat16 or ScalarType.Float16 ? ScalarType.Float32 : linear.weight.dtype;

    private PeftDslException Unknown(string name) =>
        new($"IA3 adapter '{name}' does not exist (IA3 adapters: {(configs.Count == 0 ? "none" : string.Join(", ", configs.Keys))})");
}
