using System.Globalization;
using PeftDsl.Peft.Lora;
using PeftDsl.Peft.Prompts;
using PeftDsl.Runtime;
using PeftDsl.Tokenization;
using PeftDsl.Training;

namespace PeftDsl.Cli.Commands;

/// <summary>What <c>peft train</c> trains, under the name <see cref="Name"/> (<see cref="TrainRun.Adapter"/> alone, the
/// method's own name in a combination): a LoRA adapter, IA3 vectors, bottleneck adapters, a prompt-learning task, or
/// several of them. Each knows how to start, how to resume from a checkpoint and how to write peft's files.</summary>
public abstract record TrainMethod
{
    /// <summary>The adapter's name in the model (names are unique across methods).</summary>
    public string Name { get; init; } = TrainRun.Adapter;

    /// <summary>"LoRA r=8 alpha=16", "P-tuning (mlp) with 20 virtual tokens", …</summary>
    public abstract string Describe { get; }

    /// <summary>Adds a new, freshly initialised trainable adapter under <see cref="Name"/> (a new run); prompt tuning
    /// uses the tokenizer for <c>--prompt-init-text</c>. An option that does not fit the model is a bad-input error.</summary>
    public abstract void Add(LanguageModel model, TextTokenizer tokenizer);

    /// <summary>Adds the adapter with its trained state read from the run's <paramref name="checkpoint"/> folder
    /// (<c>--out/checkpoint</c>), for <c>--resume</c>.</summary>
    public abstract void Resume(LanguageModel model, TextTokenizer tokenizer, string checkpoint);

    /// <summary>Writes the trained adapter into an existing folder, in peft's format, file by file atomically.</summary>
    public abstract void WriteAdapter(LanguageModel model, string folder);

    /// <summary>The options a resume must repeat.</summary>
    public abstract IReadOnlyDictionary<string, string> Settings { get; }

    /// <summary>Positions the method puts before every example.</summary>
    public virtual int VirtualTokens => 0;

    /// <summary>The prompt-learning part of the method, if it has one.</summary>
    public virtual PromptLearningMethod? PromptPart => null;
}

/// <summary>A LoRA adapter (DoRA with <c>--dora</c>), peft's format.</summary>
/// <param name="Lora">The adapter's rank, alpha, dropout and targets, from the LoRA options.</param>
public sealed record LoraMethod(LoraConfig Lora) : TrainMethod
{
    /// <inheritdoc/>
    public override string Describe => $"LoRA r={Lora.R} alpha={Lora.Alpha.ToString(CultureInfo.InvariantCulture)}";

    /// <inheritdoc/>
    public override void Add(LanguageModel model, TextTokenizer tokenizer) => model.Adapters.Add(Name, Lora,
        "--targets/--r" + (Lora.TrainableTokenIndices is null ? "" : "/--trainable-tokens") + (Lora.ModulesToSave is null ? "" : "/--modules-to-save"));

    // The checkpoint lays LoRA adapters out as peft does: "default" at the top, others in a subfolder of their name.
    /// <inheritdoc/>
    public override void Resume(LanguageModel model, TextTokenizer tokenizer, string checkpoint) =>
        model.Adapters.Load(Name == TrainRun.Adapter ? Path.Combine(checkpoint, TrainingCheckpoint.AdapterFolder)
            : Path.Combine(checkpoint, TrainingCheckpoint.AdapterFolder, Name), Name, trainable: true);

    /// <inheritdoc/>
    public override void WriteAdapter(LanguageModel model, string folder) => model.Adapters.WriteFiles(folder, Name);

    /// <inheritdoc/>
    public override IReadOnlyDictionary<string, string> Settings
    {
        get
        {
            var settings = new Dictionary<string, string>
            {
                ["--r"] = Lora.R.ToString(CultureInfo.InvariantCulture),
                ["--alpha"] = Lora.Alpha.ToString("R", CultureInfo.InvariantCulture),
                ["--lora-dropout"] = Lora.Dropout.ToString("R", CultureInfo.InvariantCulture),
                ["--targets"] = Lora.TargetModules is { } t ? string.Join(",", t) : "(the model's default)",
                ["--dora"] = Lora.UseDora ? "yes" : "no",
                ["--rslora"] = Lora.UseRsLora ? "yes" : "no",
            };
            // Recorded only when given, so checkpoints from before these options keep their settings.
            if (Lora.TrainableTokenIndices is { } tokens) settings["--trainable-tokens"] = string.Join(",", tokens);
            if (Lora.ModulesToSave is { } saved) settings["--modules-to-save"] = string.Join(",", saved);
            return settings;
        }
    }
}

/// <summary>IA3 with peft's semantics: vectors on the targets' outputs, or inputs for the feed-forward ones.</summary>
public sealed record Ia3Method(Peft.Ia3.Ia3Config Ia3) : TrainMethod
{
    /// <inheritdoc/>
    public override string Describe => Ia3.Placement == Peft.Ia3.Ia3Placement.Nemo ? "IA3 (NeMo placement: keys, values, MLP activation)"
        : "IA3" + (Ia3.TargetModules is { } t ? $" on {string.Join(", ", t)}" : " on peft's default targets");

    /// <inheritdoc/>
    public override void Add(LanguageModel model, TextTokenizer tokenizer) => model.Ia3.Add(Name, Ia3, "--targets/--feedforward/--ia3-placement");

    /// <inheritdoc/>
    public override void Resume(LanguageModel model, TextTokenizer tokenizer, string checkpoint) =>
        model.Ia3.Load(Path.Combine(checkpoint, TrainingCheckpoint.Ia3Folder, Name), Name, trainable: true);

    /// <inheritdoc/>
    public override void WriteAdapter(LanguageModel model, string folder) => model.Ia3.WriteFiles(folder, Name);

    /// <inheritdoc/>
    public override IReadOnlyDictionary<string, string> Settings => new Dictionary<string, string>
    {
        ["--method"] = Peft.Ia3.Ia3ConfigJson.PeftType,
        ["--targets"] = Ia3.TargetModules is { } t ? string.Join(",", t) : "(the model's default)",
        ["--feedforward"] = Ia3.FeedforwardModules is { } f ? string.Join(",", f) : "(the model's default)",
    }.WithNonDefault("--ia3-placement", Ia3.Placement, Peft.Ia3.Ia3Placement.Peft);
}

/// <summary>Bottleneck adapters at the model's adapter sites (NeMo's canonical adapters).</summary>
public sealed record BottleneckMethod(Peft.Adapters.BottleneckConfig Adapter) : TrainMethod
{
    /// <inheritdoc/>
    public override string Describe => $"{(Adapter.TieWeights ? "tied " : "")}{(Adapter.Placement == Peft.Adapters.BottleneckPlacement.Parallel ? "parallel " : "")}" +
                                       $"bottleneck adapters of width {Adapter.AdapterDim} ({Adapter.Activation.ToString().ToLowerInvariant()})" +
                                       (Adapter.Sites is { } s ? $" at {string.Join(", ", s)}" : " at every adapter site");

    /// <inheritdoc/>
    public override void Add(LanguageModel model, TextTokenizer tokenizer) => model.Bottleneck.Add(Name, Adapter, "--adapter-dim/--adapter-sites");

    /// <inheritdoc/>
    public override void Resume(LanguageModel model, TextTokenizer tokenizer, string checkpoint) =>
        model.Bottleneck.Load(Path.Combine(checkpoint, TrainingCheckpoint.BottleneckFolder, Name), Name, trainable: true);

    /// <inheritdoc/>
    public override void WriteAdapter(LanguageModel model, string folder) => model.Bottleneck.WriteFiles(folder, Name);

    /// <inheritdoc/>
    public override IReadOnlyDictionary<string, string> Settings => new Dictionary<string, string>
    {
        ["--method"] = Peft.Adapters.BottleneckConfigJson.PeftType,
        ["--adapter-dim"] = Adapter.AdapterDim.ToString(CultureInfo.InvariantCulture),
        ["--adapter-activation"] = Adapter.Activation.ToString(),
        ["--adapter-norm"] = Adapter.Norm.ToString(),
        ["--adapter-sites"] = Adapter.Sites is { } s ? string.Join(",", s) : "(all)",
    }.WithNonDefault("--adapter-placement", Adapter.Placement, Peft.Adapters.BottleneckPlacement.Sequential)
     .WithNonDefault("--adapter-tie", Adapter.TieWeights, false);
}

/// <summary>Prompt tuning, P-tuning or prefix tuning. The checkpoint keeps the encoder; the adapter file, as peft
/// writes it, the rows the encoder produces.</summary>
public sealed record PromptLearningMethod(PromptConfig Prompt) : TrainMethod
{
    /// <inheritdoc/>
    public override string Describe => Prompt.Method switch
    {
        PromptMethod.PTuning => $"P-tuning ({Prompt.EncoderType switch { PromptEncoderType.Lstm => "lstm", PromptEncoderType.NemoMlp => "nemo-mlp", _ => "mlp" }} encoder)",
        PromptMethod.PrefixTuning => Prompt.PrefixProjection ? "prefix tuning (projected)" : "prefix tuning",
        _ => "prompt tuning",
    } + $" with {Prompt.NumVirtualTokens} virtual tokens";

    /// <inheritdoc/>
    public override void Add(LanguageModel model, TextTokenizer tokenizer) =>
        model.Prompts.Add(Name, Prompt, Prompt.InitText is { } text ? tokenizer.Encode(text) : null, "--method/--virtual-tokens");

    /// <inheritdoc/>
    public override void Resume(LanguageModel model, TextTokenizer tokenizer, string checkpoint)
    {
        Add(model, tokenizer);
        model.Prompts.ReadState(Path.Combine(checkpoint, TrainingCheckpoint.PromptsFolder, Name), Name);
    }

    /// <inheritdoc/>
    public override void WriteAdapter(LanguageModel model, string folder) => model.Prompts.WriteInto(folder, Name);

    /// <inheritdoc/>
    public override int VirtualTokens => Prompt.NumVirtualTokens;

    /// <inheritdoc/>
    public override PromptLearningMethod? PromptPart => this;

    /// <inheritdoc/>
    public override IReadOnlyDictionary<string, string> Settings => new Dictionary<string, string>
    {
        ["--method"] = PromptConfigJson.PeftType(Prompt.Method),
        ["--virtual-tokens"] = Prompt.NumVirtualTokens.ToString(CultureInfo.InvariantCulture),
        ["--prompt-init"] = Prompt.Init.ToString(),
        ["--prompt-init-text"] = Prompt.InitText ?? "(none)",
        ["--encoder"] = Prompt.EncoderType.ToString(),
        ["--encoder-hidden"] = Prompt.EncoderHiddenSize.ToString(CultureInfo.InvariantCulture),
        ["--encoder-layers"] = Prompt.EncoderNumLayers.ToString(CultureInfo.InvariantCulture),
        ["--encoder-dropout"] = Prompt.EncoderDropout.ToString("R", CultureInfo.InvariantCulture),
        ["--prefix-projection"] = Prompt.PrefixProjection ? "yes" : "no",
    };
}

/// <summary>
/// Several methods trained together in one model (NeMo's <c>peft_scheme: "ptuning,lora"</c>): each part is named after
/// its method and writes its own adapter folder into a subfolder of that name, peft's layout for several adapters,
/// so each stays loadable alone and <c>--adapter</c> runs them together.
/// </summary>
public sealed record CombinedMethod(IReadOnlyList<TrainMethod> Parts) : TrainMethod
{
    /// <inheritdoc/>
    public override string Describe => string.Join(" + ", Parts.Select(p => p.Describe));

    /// <inheritdoc/>
    public override void Add(LanguageModel model, TextTokenizer tokenizer)
    {
        foreach (var part in Parts) part.Add(model, tokenizer);
    }

    /// <inheritdoc/>
    public override void Resume(LanguageModel model, TextTokenizer tokenizer, string checkpoint)
    {
        foreach (var part in Parts) part.Resume(model, tokenizer, checkpoint);
    }

    /// <summary>Writes each part's adapter into its own subfolder of <paramref name="folder"/>, named after the part and
    /// created if missing.</summary>
    public override void WriteAdapter(LanguageModel model, string folder)
    {
        foreach (var part in Parts)
        {
            var sub = Path.Combine(folder, part.Name);
            Directory.CreateDirectory(sub);
            part.WriteAdapter(model, sub);
        }
    }

    /// <summary>Each part's settings under its name, so two parts' options never overwrite each other.</summary>
    public override IReadOnlyDictionary<string, string> Settings =>
        Parts.SelectMany(p => p.Settings.Select(kv => ($"{p.Name}: {kv.Key}", kv.Value)))
            .Append(("--method", string.Join(",", Parts.Select(p => p.Name))))
            .ToDictionary(kv => kv.Item1, kv => kv.Item2);

    /// <inheritdoc/>
    public override int VirtualTokens => Parts.Sum(p => p.VirtualTokens);

    /// <inheritdoc/>
    public override PromptLearningMethod? PromptPart => Parts.Select(p => p.PromptPart).FirstOrDefault(p => p is not null);
}

internal static class RunSettings
{
    /// <summary>Records an option added after checkpoints already existed only when it is not at its default, so
    /// those checkpoints resume with unchanged settings.</summary>
    public static Dictionary<string, string> WithNonDefault<T>(this Dictionary<string, string> settings, string option, T value, T plain)
    {
        if (!EqualityComparer<T>.Default.Equals(value, plain)) settings[option] = value is bool b ? (b ? "yes" : "no") : value!.ToString()!;
        return settings;
    }
}
