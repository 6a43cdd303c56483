using PeftDsl.Checkpoints;
using PeftDsl.Errors;
using PeftDsl.Peft;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftDsl.Runtime;

/// <summary>
/// What every generated root shares, causal or encoder-decoder: vocabulary, checkpoint rules, loading and saving the
/// base weights, the adapter registry and the per-call routing. Subclasses add their forward signatures.
/// </summary>
public abstract class LanguageModel(string name) : nn.Module(name), Generation.IGenerativeModel
{
    // A field initializer runs before nn.Module's constructor, the model's first call into libtorch.
#pragma warning disable CS0414 // assigned for its side effect only
    private readonly bool nativeRuntime = TorchRuntime.Ensure();
#pragma warning restore CS0414

    private AdapterRegistry? adapters;
    private Peft.Prompts.PromptTable? prompts;
    private Peft.Ia3.Ia3Registry? ia3;
    private Peft.Adapters.BottleneckRegistry? bottleneck;

    /// <summary>Size of the output vocabulary.</summary>
    public abstract long VocabSize { get; }

    /// <summary>Positions the model accepts (learned position embeddings), virtual and cached tokens included; null
    /// when positions are computed (rotary, relative).</summary>
    public virtual long? PositionLimit => null;

    /// <summary>Positions the checkpoint was trained for: <see cref="PositionLimit"/> for learned positions, the bound
    /// <c>max_position_embeddings</c> for rotary ones (<c>[RotaryEmbedding(MaxPositions)]</c>), null when the declaration
    /// names none (T5's relative positions). Generation refuses to go past it unless asked.</summary>
    public virtual long? ContextLength => PositionLimit;

    /// <summary>longrope's original context (Phi-3.5, Phi-4-mini), past which a pass uses the long factors; null otherwise.
    /// Cached decoding that reaches it recomputes the whole sequence once, as transformers' Phi-3 generation does, so
    /// that the cached keys are not left rotated by the short factors.</summary>
    public virtual long? LongRopeFrom => null;

    /// <summary>config.json's <c>model_type</c> this class reads.</summary>
    public abstract string ModelType { get; }

    private string? configModelType;

    /// <summary>The <c>model_type</c> of the config.json the model was loaded from (<c>mt5</c> for an mT5 folder, which
    /// the T5 class reads), else <see cref="ModelType"/>. peft chooses its per-family defaults (LoRA and IA3 targets, IA3's
    /// feed-forward modules) by it, and they differ between families that share a class.</summary>
    public string ConfigModelType
    {
        get => configModelType ?? ModelType;
        internal set => configModelType = value;
    }

    /// <summary>How checkpoints of this model may differ from its parameter list.</summary>
    public abstract CheckpointRules CheckpointRules { get; }

    private double? baseDropout;

    /// <summary>
    /// The base model's own dropout in training (<see cref="Modules.BaseDropout"/>): null (the default) applies the rates
    /// config.json gives, where the declaration binds them, as transformers does; a value in [0, 1] replaces every one of
    /// them (0 turns them off: <c>--base-dropout 0</c>). Evaluation and generation never drop.
    /// </summary>
    public double? BaseDropout
    {
        get => baseDropout;
        set
        {
            if (value is { } p && !(p >= 0 && p <= 1))
                throw new PeftDslException($"the base-model dropout must be in [0, 1], got {p}");
            baseDropout = value;
        }
    }

    /// <summary>
    /// Activation checkpointing (<c>--gradient-checkpointing</c>): in training with gradients, every transformer block
    /// keeps only its input and runs again in backward, trading one more forward for the activations inside the blocks
    /// (<see cref="ActivationCheckpoint"/>). Gradients are those of the plain run. Off by default.
    /// </summary>
    public bool GradientCheckpointing { get; set; }

    /// <summary>The adapters attached to this model: add, load, save, activate, merge, delete.</summary>
    public AdapterRegistry Adapters => adapters ??= new AdapterRegistry(this);

    /// <summary>The prompt table: virtual prompts by task (prompt tuning, P-tuning, prefix tuning).</summary>
    public Peft.Prompts.PromptTable Prompts => prompts ??= new Peft.Prompts.PromptTable(this);

    /// <summary>The IA3 adapters: learned vectors scaling projections' outputs or inputs.</summary>
    public Peft.Ia3.Ia3Registry Ia3 => ia3 ??= new Peft.Ia3.Ia3Registry(this);

    /// <summary>The bottleneck adapters (Houlsby; NeMo's linear adapters) at the adapter sites.</summary>
    public Peft.Adapters.BottleneckRegistry Bottleneck => bottleneck ??= new Peft.Adapters.BottleneckRegistry(this);

    /// <summary>One namespace for every method: a name routes rows, so a LoRA adapter, an IA3 adapter, a bottleneck
    /// adapter and a prompt task never share one; names that are state-dict containers are reserved.</summary>
    internal void CheckNameFree(string name)
    {
        Peft.Prompts.PromptTable.ValidateName(name, "adapter name");
        string[] reserved = ["lora_A", "lora_B", "lora_magnitude_vector", "prompt_encoder", "bottleneck", "ia3_l"];
        if (reserved.Contains(name))
            throw new PeftDslException($"'{name}' is a container name in the state dict; choose another adapter name");
        var owner = Adapters.Contains(name) ? "a LoRA adapter" : ia3?.Contains(name) == true ? "an IA3 adapter"
            : bottleneck?.Contains(name) == true ? "a bottleneck adapter" : prompts?.Contains(name) == true ? "a prompt task" : null;
        if (owner is not null) throw new PeftDslException($"'{name}' already names {owner}; delete it first or choose another name");
    }

    /// <summary>Registers a PEFT container (an <see cref="IPeftTensors"/> module) at the root, under peft's name.</summary>
    internal void AttachPeftModule(string name, nn.Module module) => register_module(name, module);

    /// <summary>Stops gradients for every base weight (PEFT trains only its own tensors).</summary>
    internal void FreezeBase()
    {
        foreach (var (_, module) in CheckpointLayout.BaseModules(this))
            foreach (var (_, p) in module.named_parameters(recurse: false)) p.requires_grad = false;
    }

    /// <inheritdoc/>
    public abstract Generation.DecodingSession BeginDecoding(Tensor prompts, Tensor mask, Generation.GenerationOptions options);

    /// <summary>Submodules are registered explicitly under their checkpoint names; TorchSharp's field-name
    /// registration would add a second name for each.</summary>
    protected override void RegisterComponents()
    {
    }

    /// <summary>The sorted <c>key [shape]</c> listing of this model's base weights in checkpoint layout.</summary>
    public string DescribeCheckpoint() => CheckpointLayout.Describe(this);

    /// <summary>Writes model.safetensors (base weights only) in Hugging Face layout; <c>FromPretrained</c> reads it back.
    /// A folder is refused, and so is an existing file unless <paramref name="overwrite"/>.</summary>
    public void SaveWeights(string path, bool overwrite = false) => CheckpointWriter.SaveWeights(this, path, overwrite);

    /// <summary>Loads base weights from a Hugging Face folder into this model, strictly.</summary>
    public void LoadCheckpoint(CheckpointFolder folder) => CheckpointLoader.Load(this, folder, CheckpointRules);

    /// <summary>The routing of one call: the active adapters, IA3 vectors and prompt task, or one name per row of
    /// <paramref name="inputIds"/>, where a name is a LoRA adapter, an IA3 adapter, a prompt task or <c>__base__</c>.</summary>
    protected internal AdapterRouting Route(IReadOnlyList<string>? adapterNames, Tensor inputIds)
    {
        var batch = inputIds.shape[0];
        var hasPrompts = prompts is { Names.Count: > 0 };
        var hasIa3 = ia3 is { Names.Count: > 0 };
        var hasBottleneck = bottleneck is { Names.Count: > 0 };
        if (!hasPrompts && !hasIa3 && !hasBottleneck) return Adapters.Route(adapterNames, batch, inputIds.device);
        if (adapterNames is null)
        {
            var uniform = Adapters.Route(null, batch, inputIds.device);
            if (!Adapters.Enabled) return uniform;
            if (hasIa3) uniform = uniform.WithIa3(ia3!.Active, null);
            if (hasBottleneck) uniform = uniform.WithBottleneck(bottleneck!.Active, null);
            return hasPrompts && prompts!.Active is { } task ? uniform.WithPrompts(Enumerable.Repeat<string?>(task, (int)batch).ToList()) : uniform;
        }
        if (adapterNames.Count != batch)
            throw new PeftDslException($"adapter_names has {adapterNames.Count} entries for a batch of {batch} rows");
        // Folded weights would act on every row, whatever the row names.
        if (Adapters.AnyMerged || (hasIa3 && ia3!.AnyMerged))
            throw new PeftDslException("adapter_names cannot be used while adapters are merged: call Unmerge() first");
        bool IsPrompt(string? n) => n is not null && hasPrompts && prompts!.Contains(n);
        bool IsIa3(string? n) => n is not null && hasIa3 && ia3!.Contains(n);
        bool IsBottleneck(string? n) => n is not null && hasBottleneck && bottleneck!.Contains(n);
        var promptRows = adapterNames.Select(n => IsPrompt(n) ? n : null).ToList();
        var ia3Rows = adapterNames.Select(n => IsIa3(n) ? n : null).ToList();
        var bottleneckRows = adapterNames.Select(n => IsBottleneck(n) ? n : null).ToList();
        var loraRows = adapterNames.Select(n => IsPrompt(n) || IsIa3(n) || IsBottleneck(n) ? AdapterRouting.BaseRow : n).ToList();
        var routing = loraRows.All(n => n == AdapterRouting.BaseRow)
            ? AdapterRouting.None
            : Adapters.Route(loraRows!, batch, inputIds.device);
        return Adapters.Enabled ? routing.WithIa3([], ia3Rows).WithBottleneck([], bottleneckRows).WithPrompts(promptRows) : routing;
    }

    /// <summary>The virtual tokens of a call, or null. <paramref name="rows"/>: compute the rows (false when a cache
    /// already holds them).</summary>
    internal Peft.Prompts.VirtualTokens? VirtualTokens(AdapterRouting routing, Tensor inputIds, bool rows) =>
        prompts is null ? null : prompts.Tokens(routing, inputIds, rows);

    /// <summary>
    /// A pass with virtual positions in front, as both roots run it: the mask over <paramref name="ids"/> gains the
    /// virtual positions before the real ones (those already cached and this pass's), and on the first pass a prefix
    /// goes into the cache, one made for the call when the caller has none (returned as <c>Temporary</c>, for the
    /// caller to dispose).
    /// </summary>
    private protected static (KvCache? Cache, KvCache? Temporary, Tensor? Mask) EnterVirtual(Peft.Prompts.VirtualTokens prompts,
        Tensor? mask, KvCache? cache, Tensor ids)
    {
        var first = cache is null || cache.PastLength == 0;
        // Real positions already cached: none on the first pass, afterwards all cached positions but the virtual ones.
        var realPast = first ? 0 : cache!.PastLength - cache.VirtualLength;
        var extended = prompts.ExtendMask(mask, ids.shape[0], realPast + ids.shape[1], ids.device);
        KvCache? temporary = null;
        if (first && prompts.Prefix is { } prefix)
        {
            cache ??= temporary = new KvCache();
            cache.Prefill(prefix, prompts.Count);
        }
        return (cache, temporary, extended);
    }

    /// <summary>True when the routed prompt tasks are prefix tuning (a batch never mixes them with other prompt tasks).</summary>
    internal bool RoutesPrefix(AdapterRouting routing) => prompts is not null && prompts.RoutesPrefix(routing);

    internal static void Require2D(Tensor t, string name)
    {
        if (t.dim() != 2)
            throw new PeftDslException($"{name} must be (batch, length), got shape [{string.Join(", ", t.shape)}]");
    }
}
