using System.CommandLine;
using PeftDsl.Errors;
using PeftDsl.Peft.Lora;

namespace PeftDsl.Cli.Commands;

/// <summary>A new LoRA adapter's options: rank, alpha, dropout, targets, DoRA, rsLoRA.</summary>
public sealed class LoraOptions
{
    /// <summary><c>--r</c>: the LoRA rank (default 8).</summary>
    public Option<int> Rank { get; } = new("--r") { Description = "LoRA rank", DefaultValueFactory = _ => 8 };

    /// <summary><c>--alpha</c>: the LoRA scale numerator, the update being scaled by alpha / r (default 2 × r).</summary>
    public Option<double?> Alpha { get; } = new("--alpha") { Description = "LoRA alpha (default: 2 × r); the update is scaled by alpha / r" };

    /// <summary><c>--lora-dropout</c>: dropout on the adapter's input while training, in [0, 1) (default 0.05).</summary>
    public Option<double> Dropout { get; } = new("--lora-dropout") { Description = "Dropout on the adapter's input while training", DefaultValueFactory = _ => 0.05 };

    /// <summary><c>--targets</c>: modules to adapt, space- or comma-separated (default: peft's targets for the model).</summary>
    public Option<string[]> Targets { get; } = new("--targets")
    {
        Description = "Modules to adapt, space- or comma-separated: module names or dotted suffixes (c_attn, attn.c_proj), NeMo site names (attention_qkv), attention, mlp, all; or one re:REGEX matching whole module paths (default: peft's for the model)",
        AllowMultipleArgumentsPerToken = true,
    };

    /// <summary><c>--dora</c>: train a DoRA adapter, which also learns a magnitude per output row.</summary>
    public Option<bool> Dora { get; } = new("--dora") { Description = "DoRA: learn a magnitude per output row as well" };

    /// <summary><c>--rslora</c>: scale the update by alpha / √r instead of alpha / r.</summary>
    public Option<bool> RsLora { get; } = new("--rslora") { Description = "rsLoRA: scale by alpha / √r" };

    /// <summary><c>--trainable-tokens</c>: token ids whose embedding rows (and a tied head's) train with the adapter
    /// (peft's <c>trainable_token_indices</c>), for new special tokens such as a chat template's.</summary>
    public Option<string[]> TrainableTokens { get; } = new("--trainable-tokens")
    {
        Description = "Token ids, space- or comma-separated, whose input-embedding rows (and a tied head's) train with the adapter (peft's trainable_token_indices), e.g. new special tokens of a chat template",
        AllowMultipleArgumentsPerToken = true,
    };

    /// <summary><c>--modules-to-save</c>: modules trained whole beside the adapter (peft's <c>modules_to_save</c>): the input
    /// embedding and an untied LM head.</summary>
    public Option<string[]> ModulesToSave { get; } = new("--modules-to-save")
    {
        Description = "Modules trained whole beside the adapter, space- or comma-separated (peft's modules_to_save): the input embedding (embed_tokens) and an untied LM head (lm_head)",
        AllowMultipleArgumentsPerToken = true,
    };

    /// <summary>Adds the LoRA options (<c>--r</c>, <c>--alpha</c>, <c>--lora-dropout</c>, <c>--targets</c>, <c>--dora</c>,
    /// <c>--rslora</c>) to <paramref name="command"/>.</summary>
    public void AddTo(Command command)
    {
        foreach (var option in new Option[] { Rank, Alpha, Dropout, Targets, Dora, RsLora, TrainableTokens, ModulesToSave }) command.Options.Add(option);
    }

    /// <summary>The LoRA options given on the command line, to refuse them with another method.</summary>
    public IEnumerable<string> Given(ParseResult parse) =>
        new Option[] { Rank, Alpha, Dropout, Targets, Dora, RsLora, TrainableTokens, ModulesToSave }.Where(o => parse.GetResult(o) is { Implicit: false }).Select(o => o.Name);

    private static IReadOnlyList<string> ModuleNames(string[] values)
    {
        var names = LoraTargets.Items(values).Distinct().ToList();
        return names.Count > 0 ? names : throw new PeftDslException("--modules-to-save: give at least one module name (embed_tokens, lm_head)");
    }

    private static IReadOnlyList<long> TokenIds(string[] values)
    {
        var parts = LoraTargets.Items(values).ToList();
        if (parts.Count == 0) throw new PeftDslException("--trainable-tokens: give at least one token id");
        if (parts.Count != parts.Distinct().Count()) throw new PeftDslException("--trainable-tokens: a token id is given twice");
        return parts.Select(p => long.TryParse(p, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var id)
            ? id : throw new PeftDslException($"--trainable-tokens: '{p}' is not a token id (a whole number ≥ 0)")).ToList();
    }

    /// <summary>The LoRA configuration the options describe; a non-positive rank or alpha, a dropout outside [0, 1) or an
    /// empty <c>--targets</c> is a bad-input error.</summary>
    public LoraConfig Config(ParseResult parse)
    {
        var (targets, pattern) = parse.GetResult(Targets) is { Implicit: false } ? LoraTargets.Parse(parse.GetValue(Targets) ?? [], "--targets") : (null, null);
        var rank = parse.GetValue(Rank);
        if (rank <= 0) throw new PeftDslException($"--r must be a positive whole number, got {rank}");
        if (parse.GetValue(Alpha) is { } alpha && alpha <= 0)
            throw new PeftDslException($"--alpha must be positive (the update is scaled by alpha / r), got {alpha.ToString(System.Globalization.CultureInfo.InvariantCulture)}");
        var dropout = parse.GetValue(Dropout);
        if (!(dropout >= 0 && dropout < 1))
            throw new PeftDslException($"--lora-dropout must be in [0, 1), got {dropout.ToString(System.Globalization.CultureInfo.InvariantCulture)}");
        return new LoraConfig
        {
            R = rank,
            Alpha = parse.GetValue(Alpha) ?? 2.0 * rank,
            Dropout = parse.GetValue(Dropout),
            TargetModules = targets,
            TargetPattern = pattern,
            UseDora = parse.GetValue(Dora),
            UseRsLora = parse.GetValue(RsLora),
            TrainableTokenIndices = parse.GetResult(TrainableTokens) is { Implicit: false } ? TokenIds(parse.GetValue(TrainableTokens) ?? []) : null,
            ModulesToSave = parse.GetResult(ModulesToSave) is { Implicit: false } ? ModuleNames(parse.GetValue(ModulesToSave) ?? []) : null,
        }.Validate("--r/--alpha/--lora-dropout/--trainable-tokens/--modules-to-save");
    }
}
