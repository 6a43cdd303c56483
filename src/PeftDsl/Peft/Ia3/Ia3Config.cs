using PeftDsl.Errors;

namespace PeftDsl.Peft.Ia3;

/// <summary>Where the vectors go. <see cref="Peft"/>: on the output (or, for feed-forward modules, the input) of whole
/// target projections, as Hugging Face peft. <see cref="Nemo"/>: NeMo's infused adapters, on the keys and the values
/// after the QKV split (only the k and v columns of a fused projection) and on the MLP activation before fc2, at the
/// IA3 sites the DSL declares.</summary>
public enum Ia3Placement { Peft, Nemo }

/// <summary>
/// peft's <c>IA3Config</c>: learned vectors that scale the output of every target, or the input of the targets that
/// are also <see cref="FeedforwardModules"/>. <see cref="InitIa3Weights"/> starts them at ones (the base model), as
/// peft does; false draws them from N(0, 1).
/// </summary>
public sealed record Ia3Config
{
    /// <summary>Module names (exact path or dot-separated suffix); null for peft's default for the model type.</summary>
    public IReadOnlyList<string>? TargetModules { get; init; }

    /// <summary>A regular expression the whole module path must match, instead of <see cref="TargetModules"/>.</summary>
    public string? TargetPattern { get; init; }

    /// <summary>Targets whose input is scaled (peft: the path ends with one of them); null for peft's default.</summary>
    public IReadOnlyList<string>? FeedforwardModules { get; init; }

    /// <summary>A regular expression for <see cref="FeedforwardModules"/> (the whole path must match).</summary>
    public string? FeedforwardPattern { get; init; }

    public IReadOnlyList<string>? ExcludeModules { get; init; }

    public bool InitIa3Weights { get; init; } = true;

    public Ia3Placement Placement { get; init; } = Ia3Placement.Peft;

    public string? TaskType { get; init; }

    /// <summary>peft records the layout of the targets (true for GPT-2's Conv1D); it does not change the math here.</summary>
    public bool FanInFanOut { get; init; }

    public Ia3Config Validate(string source)
    {
        // NeMo's sites come from the model; a saved file lists their modules in peft's terms, which the load checks.
        if (Placement == Ia3Placement.Nemo && (TargetPattern is not null || FeedforwardPattern is not null || ExcludeModules is not null))
            throw new PeftDslException($"{source}: NeMo's IA3 placement takes its sites from the model (keys, values, the MLP activation); " +
                                       "target and feed-forward patterns and exclude_modules do not apply to it");
        if (TargetModules is { Count: 0 } && TargetPattern is null)
            throw new PeftDslException($"{source}: target_modules is empty; name the modules to scale");
        if (TargetModules is not null && TargetPattern is not null)
            throw new PeftDslException($"{source}: give target_modules as a list or as a pattern, not both");
        if (TargetModules is { } targets && FeedforwardModules is { } ff && ff.FirstOrDefault(f => !targets.Any(t => t == f || t.EndsWith("." + f, StringComparison.Ordinal) || f.EndsWith("." + t, StringComparison.Ordinal))) is { } stray)
            throw new PeftDslException($"{source}: feedforward_modules names '{stray}', which is not in target_modules (peft requires a subset)");
        return this;
    }
}
