using System.Text.Json.Nodes;
using PeftDsl.Errors;

namespace PeftDsl.Peft.Lora;

/// <summary>peft's <c>init_lora_weights</c>: how A and B start (B is zero unless <see cref="Off"/>).</summary>
public enum LoraInit
{
    /// <summary><c>true</c>: A kaiming-uniform (a = √5, like nn.Linear), B zero, so a new adapter changes nothing.</summary>
    Default,
    /// <summary><c>"gaussian"</c>: A normal with std 1/r, B zero.</summary>
    Gaussian,
    /// <summary><c>false</c>: both random (A kaiming-uniform, B kaiming-uniform): for tests, not training.</summary>
    Off,
}

/// <summary>NeMo's init methods for A (<c>column_init_method</c>) and B (<c>row_init_method</c>).</summary>
public enum NemoInit
{
    /// <summary>xavier_normal_.</summary>
    Xavier,
    /// <summary>normal(0, 0.2), NeMo's <c>init_method_normal(0.2)</c>.</summary>
    Normal,
    /// <summary>kaiming_uniform_ with a = √5.</summary>
    Kaiming,
    /// <summary>zeros_ (NeMo's <c>zero</c>, the usual choice for B).</summary>
    Zero,
}

/// <summary>
/// A LoRA adapter's configuration: Hugging Face peft's <c>LoraConfig</c> fields with peft's defaults, plus NeMo's
/// options (<see cref="DropoutPosition"/>, <see cref="AInit"/>/<see cref="BInit"/>, site names such as
/// <c>attention_qkv</c> or the shorthands <c>attention</c>, <c>mlp</c>, <c>all</c> in <see cref="TargetModules"/>).
/// Validated on construction through <see cref="Validate"/>.
/// </summary>
public sealed record LoraConfig
{
    /// <summary>Rank (peft <c>r</c>, default 8).</summary>
    public int R { get; init; } = 8;

    /// <summary>peft <c>lora_alpha</c> (default 8); the delta is scaled by alpha / r.</summary>
    public double Alpha { get; init; } = 8;

    /// <summary>peft <c>lora_dropout</c>: dropout on the adapter's input (or output, <see cref="DropoutPosition"/>).</summary>
    public double Dropout { get; init; }

    /// <summary>Module-name targets: an exact module path, a dotted suffix (<c>c_attn</c>, <c>mlp.c_proj</c>), a NeMo
    /// site name, <c>attention</c>/<c>mlp</c>/<c>all</c>, or peft's <c>all-linear</c>. Null uses peft's default
    /// targets for the model type (or <see cref="TargetPattern"/>).</summary>
    public IReadOnlyList<string>? TargetModules { get; init; }

    /// <summary>peft's string form of <c>target_modules</c>: a regex the whole module path must match.</summary>
    public string? TargetPattern { get; init; }

    /// <summary>peft <c>exclude_modules</c> as names or suffixes.</summary>
    public IReadOnlyList<string>? ExcludeModules { get; init; }

    /// <summary>peft's string form of <c>exclude_modules</c>: a regex (full match).</summary>
    public string? ExcludePattern { get; init; }

    /// <summary>peft <c>layers_to_transform</c>: only these block indices (null: all).</summary>
    public IReadOnlyList<int>? LayersToTransform { get; init; }

    /// <summary>peft <c>layers_pattern</c>: the name of the block list that layer indices count in (<c>h</c>,
    /// <c>layers</c>, <c>block</c>).</summary>
    public IReadOnlyList<string>? LayersPattern { get; init; }

    /// <summary>peft <c>rank_pattern</c>: module-name regex → rank.</summary>
    public IReadOnlyDictionary<string, int> RankPattern { get; init; } = new Dictionary<string, int>();

    /// <summary>peft <c>alpha_pattern</c>: module-name regex → alpha.</summary>
    public IReadOnlyDictionary<string, double> AlphaPattern { get; init; } = new Dictionary<string, double>();

    /// <summary>rsLoRA: scale by alpha / √r.</summary>
    public bool UseRsLora { get; init; }

    /// <summary>DoRA: a trainable magnitude per output row over the normalised adapted weight.</summary>
    public bool UseDora { get; init; }

    /// <summary>peft <c>fan_in_fan_out</c>. peft forces it to the target's layout (true for GPT-2's Conv1D); so do
    /// we, and saving writes what peft would.</summary>
    public bool FanInFanOut { get; init; }

    /// <summary>peft's <c>init_lora_weights</c>: how A and B start where <see cref="AInit"/>/<see cref="BInit"/> do not say.</summary>
    public LoraInit InitLoraWeights { get; init; } = LoraInit.Default;

    /// <summary>NeMo: dropout before A (peft's behaviour) or after B.</summary>
    public DropoutPosition DropoutPosition { get; init; } = DropoutPosition.Pre;

    /// <summary>NeMo's init for A; overrides <see cref="InitLoraWeights"/> for A when set.</summary>
    public NemoInit? AInit { get; init; }

    /// <summary>NeMo's init for B; overrides <see cref="InitLoraWeights"/> for B when set.</summary>
    public NemoInit? BInit { get; init; }

    /// <summary>peft's <c>trainable_token_indices</c>: token ids whose rows of the input embedding (and of a head tied to it)
    /// train beside the adapter (<see cref="TrainableTokens"/>); null for none.</summary>
    public IReadOnlyList<long>? TrainableTokenIndices { get; init; }

    /// <summary>The module <see cref="TrainableTokenIndices"/> names when the config gives them as peft's dict form
    /// (<c>{"embed_tokens": [...]}</c>); null for the list form, which means the input embedding.</summary>
    public string? TrainableTokenModule { get; init; }

    /// <summary>peft's <c>modules_to_save</c>: modules trained whole beside the adapter, as a copy per adapter
    /// (<see cref="ModulesToSave"/>): the input embedding and the LM head, by name or path suffix; null for none.</summary>
    public IReadOnlyList<string>? ModulesToSave { get; init; }

    /// <summary>peft <c>task_type</c>: <c>CAUSAL_LM</c> or <c>SEQ_2_SEQ_LM</c> (null: not recorded).</summary>
    public string? TaskType { get; init; }

    /// <summary>peft's <c>base_model_name_or_path</c>: the base model the adapter was trained on (metadata, written back, not checked).</summary>
    public string? BaseModelNameOrPath { get; init; }

    /// <summary>Fields of a loaded <c>adapter_config.json</c> that PeftDsl does not interpret but keeps on save
    /// (metadata and unknown fields at their no-op values).</summary>
    public JsonObject Extra { get; init; } = new();

    /// <summary>Rank/alpha/dropout sanity; the message names the field.</summary>
    public LoraConfig Validate(string source = "LoraConfig")
    {
        if (R <= 0) throw new PeftDslException($"{source}: r must be a positive integer, got {R}");
        if (!double.IsFinite(Alpha)) throw new PeftDslException($"{source}: lora_alpha must be a finite number, got {Alpha}");
        if (!(Dropout >= 0 && Dropout < 1)) throw new PeftDslException($"{source}: lora_dropout must be in [0, 1), got {Dropout}");
        foreach (var (pattern, rank) in RankPattern)
            if (rank <= 0) throw new PeftDslException($"{source}: rank_pattern['{pattern}'] must be a positive integer, got {rank}");
        foreach (var (pattern, alpha) in AlphaPattern)
            if (!double.IsFinite(alpha)) throw new PeftDslException($"{source}: alpha_pattern['{pattern}'] must be a finite number");
        if (TargetModules is { Count: 0 } && TargetPattern is null)
            throw new PeftDslException($"{source}: target_modules is empty, so the adapter would change nothing");
        if (TargetModules is not null && TargetPattern is not null)
            throw new PeftDslException($"{source}: give target_modules as a list or as a regex, not both");
        if (LayersToTransform is { } layers && layers.Any(l => l < 0))
            throw new PeftDslException($"{source}: layers_to_transform has a negative index");
        if (LayersPattern is not null && LayersToTransform is null)
            throw new PeftDslException($"{source}: layers_pattern is set without layers_to_transform");
        if (TargetPattern is not null && LayersToTransform is not null)
            throw new PeftDslException($"{source}: layers_to_transform cannot be used with a regex target_modules (peft refuses it too): put the layers in the regex");
        if (TrainableTokenIndices is { } tokens)
        {
            if (tokens.Count == 0) throw new PeftDslException($"{source}: trainable_token_indices is empty");
            if (tokens.FirstOrDefault(t => t < 0) is var negative && negative < 0)
                throw new PeftDslException($"{source}: trainable_token_indices holds {negative}; token ids are not negative");
            if (tokens.Distinct().Count() != tokens.Count)
                throw new PeftDslException($"{source}: trainable_token_indices names a token twice");
        }
        if (UseDora && DropoutPosition == DropoutPosition.Post)
            throw new PeftDslException($"{source}: DoRA applies dropout to its input only; dropout_position 'post' is not defined for it");
        return this;
    }

    /// <summary>alpha / r, or alpha / √r with rsLoRA.</summary>
    public double Scaling(int rank, double alpha) => UseRsLora ? alpha / Math.Sqrt(rank) : alpha / rank;
}
