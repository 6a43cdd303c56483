using PeftDsl.Checkpoints;
using PeftDsl.Errors;
using PeftDsl.Modules;
using PeftDsl.Peft.Lora;
using PeftDsl.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftDsl.Peft;

/// <summary>
/// The adapters of one model, by name: add, load, save, activate, disable, merge, delete — peft's
/// <c>PeftModel</c> API. It is the only code that walks the model to inject or remove adapter state, and it keeps
/// one invariant the forward relies on: a merged adapter is always active.
/// </summary>
public sealed partial class AdapterRegistry
{
    private readonly LanguageModel model;
    private readonly Dictionary<string, LoraConfig> configs = new(StringComparer.Ordinal);
    private readonly List<string> order = [];
    private readonly List<string> active = [];
    // Which adapters are folded into the weights; kept here so a call's routing need not walk the model.
    private readonly HashSet<string> merged = new(StringComparer.Ordinal);

    internal AdapterRegistry(LanguageModel model) => this.model = model;

    /// <summary>Adapter names in the order they were added (a copy: deleting while iterating is safe).</summary>
    public IReadOnlyList<string> Names => order.ToList();

    /// <summary>The adapters every row runs when a call names none (empty: the base model).</summary>
    public IReadOnlyList<string> Active => active.ToList();

    /// <summary>False after <see cref="Disable"/>: calls run the base model.</summary>
    public bool Enabled { get; private set; } = true;

    /// <summary>True when a LoRA adapter of this name exists (IA3 adapters, bottleneck adapters and prompt tasks have registries of their own).</summary>
    public bool Contains(string name) => configs.ContainsKey(name);

    /// <summary>True when a LoRA adapter is folded into the weights.</summary>
    internal bool AnyMerged => merged.Count > 0;

    /// <summary>The model's config.json <c>model_type</c> (peft's default targets depend on it).</summary>
    public string ModelType => model.ConfigModelType;

    /// <summary>The adapter's configuration.</summary>
    public LoraConfig this[string name] => configs.TryGetValue(name, out var c) ? c : throw Unknown(name);

    /// <summary>Every projection of the model with its module path, in module order.</summary>
    public IReadOnlyList<(string Path, PeftLinear Linear)> Linears() =>
        CheckpointLayout.BaseModules(model).Where(m => m.Module is PeftLinear).Select(m => (m.Path, (PeftLinear)m.Module)).ToList();

    /// <summary>
    /// Adds a freshly initialised LoRA adapter, as peft's <c>get_peft_model</c>/<c>add_adapter</c>: its parameters
    /// are trainable, the base model is frozen, and the first adapter becomes active.
    /// </summary>
    /// <param name="source">What errors name as the origin of the config (a file, a command-line option).</param>
    public void Add(string name, LoraConfig config, string source = "LoraConfig")
    {
        Inject(name, config, source, initialize: true, strictTargets: true);
        FreezeBase();
        SetTrainable(name, true);
    }

    /// <summary>
    /// Loads a peft adapter folder (<c>adapter_config.json</c> + <c>adapter_model.safetensors</c>) as
    /// <paramref name="name"/>. Like peft's <c>from_pretrained</c>, it is frozen unless <paramref name="trainable"/>.
    /// </summary>
    public void Load(string directory, string name = "default", bool trainable = false)
    {
        LoraAdapterFile.Load(this, model, directory, name);
        FreezeBase();
        SetTrainable(name, trainable);
    }

    /// <summary>Loads every adapter of a folder as peft saves several: <c>default</c> at the top, any other name in
    /// a subfolder of that name. Returns the names loaded.</summary>
    public IReadOnlyList<string> LoadAll(string directory, bool trainable = false)
    {
        var names = LoraAdapterFile.AdaptersIn(directory);
        var loaded = new List<string>();
        try
        {
            foreach (var (name, folder) in names)
            {
                Load(folder, name, trainable);
                loaded.Add(name);
            }
        }
        catch
        {
            foreach (var name in loaded) Delete(name);   // all of the folder or none of it
            throw;
        }
        return names.Select(n => n.Name).ToList();
    }

    /// <summary>Writes adapters in peft's format: <c>default</c> into <paramref name="directory"/>, every other one
    /// into a subfolder named after it. Each folder is replaced atomically.</summary>
    public void Save(string directory, IReadOnlyList<string>? names = null)
    {
        foreach (var name in names ?? order)
        {
            var folder = name == "default" ? directory : Path.Combine(directory, name);
            LoraAdapterFile.Save(model, this, name, folder);
        }
    }

    /// <summary>Writes every adapter into a folder as <see cref="Save"/> lays them out, each file atomically but without
    /// swapping the folder: for a folder that holds other things (a training run) or that the caller swaps itself (a
    /// checkpoint).</summary>
    public void WriteInto(string directory)
    {
        foreach (var name in order)
        {
            var folder = name == "default" ? directory : Path.Combine(directory, name);
            Directory.CreateDirectory(folder);
            LoraAdapterFile.WriteFiles(model, this, name, folder);
        }
    }

    /// <summary>Writes one adapter's two files into an existing folder, each file atomically.</summary>
    public void WriteFiles(string folder, string name)
    {
        _ = this[name];
        Directory.CreateDirectory(folder);
        LoraAdapterFile.WriteFiles(model, this, name, folder);
    }

    /// <summary>Makes <paramref name="names"/> the adapters every row runs (peft's <c>set_adapter</c>; several act
    /// together). Merged adapters that are no longer active are unmerged first.</summary>
    public void SetActive(params string[] names)
    {
        foreach (var n in names) _ = this[n];
        if (merged.Any(m => !names.Contains(m))) Unmerge();
        active.Clear();
        active.AddRange(names.Distinct());
    }

    /// <summary>Runs the base model until <see cref="Enable"/>; merged adapters are unmerged.</summary>
    public void Disable()
    {
        Unmerge();
        model.Ia3.Unmerge();
        Enabled = false;
    }

    /// <summary>Undoes <see cref="Disable"/>: calls run the active adapters again (nothing is re-merged).</summary>
    public void Enable() => Enabled = true;

    /// <summary>Removes an adapter and its tensors. A merged adapter must be unmerged first.</summary>
    public void Delete(string name)
    {
        _ = this[name];
        if (merged.Contains(name))
            throw new PeftDslException($"adapter '{name}' is merged into the weights: call Unmerge() before deleting it");
        foreach (var (_, linear) in Linears()) linear.Lora.Remove(name);
        RemoveTokens(name);
        RemoveSavedCopies(name);
        configs.Remove(name);
        order.Remove(name);
        // As peft's delete_adapter: when the last active adapter goes, the first remaining one becomes active.
        if (active.Remove(name) && active.Count == 0 && order.Count > 0) active.Add(order[0]);
    }

    /// <summary>Folds adapters into the base weights (default: the active ones), so inference pays nothing extra.</summary>
    public void Merge(IReadOnlyList<string>? names = null)
    {
        names ??= active;
        foreach (var n in names)
        {
            _ = this[n];
            if (!active.Contains(n))
                throw new PeftDslException($"adapter '{n}' is not active; only active adapters can be merged (SetActive first)");
        }
        if (!Enabled) throw new PeftDslException("adapters are disabled: Enable() before merging");
        foreach (var (_, linear) in Linears()) linear.RequireFullPrecision("merging adapters");
        foreach (var (_, linear) in Linears())
            foreach (var n in names) linear.Lora.Merge(n);
        if (TokenTable() is { TokenAdapter: { } tokens } table)
            foreach (var n in names.Where(tokens.Adapters.Contains)) tokens.MergeInto(n, table.weight);
        merged.UnionWith(names);
    }

    /// <summary>Takes every merged adapter back out of the base weights.</summary>
    public void Unmerge()
    {
        foreach (var (_, linear) in Linears()) linear.Lora.Unmerge();
        if (TokenTable() is { TokenAdapter: { } tokens } table)
            foreach (var n in order.Where(n => merged.Contains(n) && tokens.Adapters.Contains(n)).Reverse()) tokens.RestoreInto(n, table.weight);
        merged.Clear();
    }

    /// <summary>peft's <c>merge_and_unload</c>: merges the active adapters, then removes every adapter, leaving a
    /// plain base model with changed weights.</summary>
    public void MergeAndUnload()
    {
        if (Enabled && active.Count > 0) Merge();
        foreach (var (_, linear) in Linears())
        {
            foreach (var name in linear.Lora.Adapters.ToList())
            {
                linear.Lora.ForgetMerged();
                linear.Lora.Remove(name);
            }
        }
        // A saved copy in use becomes the module's weight, as peft's merge_and_unload keeps the trained copy.
        foreach (var (_, module, weight) in SavedModules())
            if (module.SavedCopies?.Current() is { } trained)
                using (no_grad()) weight.copy_(trained);
        foreach (var name in order)
        {
            RemoveTokens(name);
            RemoveSavedCopies(name);
        }
        configs.Clear();
        order.Clear();
        active.Clear();
        merged.Clear();
        Enabled = true;
    }

    /// <summary>peft's <c>add_weighted_adapter</c> with <c>linear</c> or <c>cat</c>: a new adapter combining
    /// <paramref name="adapters"/> with <paramref name="weights"/>.</summary>
    public void AddWeighted(IReadOnlyList<string> adapters, IReadOnlyList<double> weights, string name, string combination = "linear") =>
        WeightedAdapters.Add(this, adapters, weights, name, combination);

    /// <summary>Sets requires_grad on one adapter's parameters.</summary>
    public void SetTrainable(string name, bool trainable)
    {
        _ = this[name];
        foreach (var p in model.SelectParameters(new ParameterQuery(Adapters: [name])))
            p.Parameter.requires_grad = trainable;
    }

    /// <summary>Creates the adapter's tensors on every selected projection (initialised, or left for a file to fill).</summary>
    /// <param name="strictTargets">Refuse a target name that selects nothing (a typo in user code); peft's own
    /// files may list names a model lacks, so loading is lenient as peft is, and its tensors decide.</param>
    internal IReadOnlyList<LoraTarget> Inject(string name, LoraConfig config, string source, bool initialize, bool strictTargets = false)
    {
        ValidateName(name);
        if (configs.ContainsKey(name)) throw new PeftDslException($"an adapter named '{name}' already exists; delete it first or choose another name");
        model.CheckNameFree(name);
        config.Validate(source);
        var targets = LoraTargets.Resolve(config, Linears(), model.ConfigModelType, source, strictTargets);
        if (targets.FirstOrDefault(t => !t.Linear.Ia3.IsEmpty) is { } both)
            throw new PeftDslException($"{source}: {both.Path} already carries an IA3 adapter; LoRA and IA3 on one projection are not combined yet");
        if (config.UseDora)
            foreach (var t in targets) t.Linear.RequireFullPrecision($"{source}: DoRA ({t.Path})");
        try
        {
            foreach (var t in targets)
            {
                var linear = t.Linear;
                var dtype = AdapterDType(linear.weight.dtype);
                var (a, b) = initialize
                    ? LoraInitializer.Create(config, t.Rank, linear.InFeatures, linear.OutFeatures, dtype, linear.weight.device)
                    : (zeros(t.Rank, linear.InFeatures, dtype: dtype, device: linear.weight.device),
                       zeros(linear.OutFeatures, t.Rank, dtype: dtype, device: linear.weight.device));
                using (a)
                using (b)
                    linear.Lora.Add(name, new LoraSettings(t.Rank, config.Scaling(t.Rank, t.Alpha), config.Dropout,
                        config.DropoutPosition, config.UseDora), a, b);
            }
            if (config.TrainableTokenIndices is { } tokens) AddTokens(name, config, tokens, source, initialize);
            if (config.ModulesToSave is { } saved) AddSavedCopies(name, config, saved, source, initialize);
        }
        catch (Exception e)
        {
            // Half an adapter must not stay behind: a retry would find its tensors on the first projections.
            foreach (var t in targets) t.Linear.Lora.Remove(name);
            RemoveTokens(name);
            RemoveSavedCopies(name);
            if (e is PeftDslException) throw;
            throw new PeftDslException($"{source}: could not create adapter '{name}' ({e.GetType().Name}: {e.Message.Split('\n')[0]}); " +
                                       "a rank this large may not fit in memory", e);
        }
        configs[name] = config;
        order.Add(name);
        if (active.Count == 0) active.Add(name);
        return targets;
    }

    /// <summary>The routing of one call (see <see cref="AdapterRouting"/>).</summary>
    internal AdapterRouting Route(IReadOnlyList<string>? rowAdapters, long batch, Device device)
    {
        if (rowAdapters is null) return Enabled ? AdapterRouting.Uniform(active.ToList()) : AdapterRouting.None;
        if (rowAdapters.Count != batch)
            throw new PeftDslException($"adapter_names has {rowAdapters.Count} entries for a batch of {batch} rows");
        foreach (var n in rowAdapters.Distinct())
        {
            if (n is null) throw new PeftDslException($"adapter_names has a null entry; use '{AdapterRouting.BaseRow}' for a row without an adapter");
            if (n == AdapterRouting.BaseRow) continue;
            if (!configs.TryGetValue(n, out var c)) throw Unknown(n);
            if (c.UseDora) throw new PeftDslException($"adapter '{n}' uses DoRA, which a mixed-adapter batch does not support (peft refuses it too)");
        }
        if (merged.Count > 0)
            throw new PeftDslException("adapter_names cannot be used while adapters are merged: call Unmerge() first");
        if (TokenTable()?.TokenAdapter is { Adapters.Count: > 0 } || SavedModules().Any(m => m.Module.SavedCopies is { Adapters.Count: > 0 }))
            throw new PeftDslException("adapter_names cannot be used with trainable tokens or modules_to_save: the embedding's and head's weights are not routed per row yet");
        // Disabled means the base model, whatever the rows name (peft checks disable_adapters first too).
        return Enabled ? AdapterRouting.PerRow(rowAdapters, device) : AdapterRouting.None;
    }

    /// <summary>Adapters train in fp32 on a bf16/fp16 base, as peft's <c>autocast_adapter_dtype</c> keeps them.</summary>
    private static ScalarType AdapterDType(ScalarType baseType) =>
        baseType is ScalarType.BFloat16 or ScalarType.Float16 ? ScalarType.Float32 : baseType;

    private void FreezeBase() => model.FreezeBase();

    private PeftDslException Unknown(string name) =>
        new($"adapter '{name}' does not exist (adapters: {(order.Count == 0 ? "none" : string.Join(", ", order))})");

    private static void ValidateName(string name)
    {
        if (string.IsNullOrWhiteSpace(name) || name == AdapterRouting.BaseRow || name.Contains('.') || name.Contains('/')
            || name.Contains('\\') || name is "." or "..")
            throw new PeftDslException($"'{name}' is not a usable adapter name: it is a state-dict segment and a folder name " +
                                       $"(no '.', '/', '\\\\', not '{AdapterRouting.BaseRow}')");
    }
}
