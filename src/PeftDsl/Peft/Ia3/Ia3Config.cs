using PeftDsl.Errors;

namespace PeftDsl.Peft.Ia3;

/// <summary>Where the vectors go. <see cref="Peft"/>: on the output (or, for feed-forward modules, the input) of whole
/// target projections, as Hugging Face peft. <see cref="Nemo"/>: NeMo's infused adapters, on the keys and the values
/// after the QKV split (only the k and v columns of a fused projection) and on the MLP activation before fc2, at the
/// IA3 sites the DSL declares.</summary>
public enum Ia3Placement
{
    /// <summary>Hugging Face peft: whole target projections, on the output or (feed-forward modules) the input.</summary>
    Peft,
    /// <summary>NeMo's infused adapters: the key and value columns after the QKV split, and the MLP activation.</summary>
    Nemo
}

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

    /// <summary>Modules never scaled, even when a target matches (peft's <c>exclude_modules</c>, as a list); not with NeMo's placement.</summary>
    public IReadOnlyList<string>? ExcludeModules { get; init; }

    /// <summary>peft's <c>init_ia3_weights</c>: true starts the vectors at ones (the base model unchanged), false draws them from N(0, 1).</summary>
    public bool InitIa3Weights { get; init; } = true;

    /// <summary>peft's placement (the default) or NeMo's; a file records NeMo's as <c>peftdsl_ia3_placement</c>.</summary>
    public Ia3Placement Placement { get; init; } = Ia3Placement.Peft;

    /// <summary>peft's <c>task_type</c>, <c>CAUSAL_LM</c> or <c>SEQ_2_SEQ_LM</c>; set from the model when the adapter is added.</summary>
    public string? TaskType { get; init; }

    /// <summary>peft records the layout of the targets (true for GPT-2's Conv1D); it does not change the math here.</summary>
    public bool FanInFanOut { get; init; }

    /// <summary>Refuses inconsistent targets (a list and a pattern, an empty list, feed-forward modules outside the targets,
    /// patterns or exclusions with NeMo's placement) and returns the config; <paramref name="source"/> names the file or option.</summary>
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
