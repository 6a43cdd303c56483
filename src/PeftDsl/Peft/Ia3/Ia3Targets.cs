using System.Text.RegularExpressions;
using PeftDsl.Errors;
using PeftDsl.Modules;
using PeftDsl.Peft.Lora;

namespace PeftDsl.Peft.Ia3;

/// <summary>One projection an IA3 adapter scales, and whether it scales the input (a feed-forward module).</summary>
public sealed record Ia3Target(string Path, PeftLinear Linear, bool Feedforward);

/// <summary>Which projections an <see cref="Ia3Config"/> selects: peft's target rule (the one LoRA uses) and its
/// feed-forward rule (<c>_check_target_module_feedforward</c>: the path ends with a name, or fully matches a pattern).</summary>
public static class Ia3Targets
{
    /// <summary>peft's <c>TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING</c> and feed-forward mapping.</summary>
    private static readonly Dictionary<string, (string[] Targets, string[] Feedforward)> PeftDefaults = new(StringComparer.Ordinal)
    {
        ["gpt2"] = (["c_attn", "mlp.c_proj"], ["mlp.c_proj"]),
        ["llama"] = (["k_proj", "v_proj", "down_proj"], ["down_proj"]),
        ["t5"] = (["k", "v", "wo"], ["wo"]),
        ["mt5"] = (["k", "v", "wi_1"], ["wi_1"]),
    };

    /// <summary>The config with peft's defaults filled in for the model type.</summary>
    public static Ia3Config WithDefaults(Ia3Config config, string modelType, string source)
    {
        if (config.TargetModules is not null || config.TargetPattern is not null)
        {
            if (config.FeedforwardModules is not null || config.FeedforwardPattern is not null) return config;
            // As peft: without feedforward_modules, the family's whole list applies (peft checks no subset then).
            return PeftDefaults.TryGetValue(modelType, out var d)
                ? config with { FeedforwardModules = d.Feedforward }
                : throw new PeftDslException($"{source}: feedforward_modules is not set and peft has no IA3 default for model_type '{modelType}'; name them (an empty list for none)");
        }
        return PeftDefaults.TryGetValue(modelType, out var defaults)
            ? config with { TargetModules = defaults.Targets, FeedforwardModules = config.FeedforwardModules ?? defaults.Feedforward }
            : throw new PeftDslException($"{source}: target_modules is not set and peft has no IA3 default for model_type '{modelType}'; name the modules");
    }

    public static IReadOnlyList<Ia3Target> Resolve(Ia3Config config, IReadOnlyList<(string Path, PeftLinear Linear)> linears, string source)
    {
        // The selection rule is LoRA's (peft's check_target_module_exists); only the target fields matter to it.
        var selection = new LoraConfig { TargetModules = config.TargetModules, TargetPattern = config.TargetPattern, ExcludeModules = config.ExcludeModules };
        // peft's names only (no NeMo site names): what is saved must be what peft reads back.
        var result = linears.Where(l => LoraTargets.Selects(selection, config.TargetModules, l.Path, l.Linear, nemo: false))
            .Select(l => new Ia3Target(l.Path, l.Linear, IsFeedforward(config, l.Path, source))).ToList();
        if (result.Count == 0)
            throw new PeftDslException($"{source}: target_modules [{string.Join(", ", config.TargetModules ?? [config.TargetPattern!])}] match no linear module " +
                                       $"of the model; its linear modules are: {string.Join(", ", linears.Select(l => l.Path.Split('.')[^1]).Distinct())}");
        return result;
    }

    /// <summary>Refuses a target name that selects nothing (a typo) when a new adapter is added.</summary>
    public static void RequireEachTarget(Ia3Config config, IReadOnlyList<(string Path, PeftLinear Linear)> linears, string source)
    {
        foreach (var name in config.TargetModules ?? [])
            if (!linears.Any(l => l.Path == name || l.Path.EndsWith("." + name, StringComparison.Ordinal)))
                throw new PeftDslException($"{source}: target '{name}' matches no linear module of the model; its linear modules are: " +
                                           string.Join(", ", linears.Select(l => l.Path.Split('.')[^1]).Distinct()));
    }

    private static bool IsFeedforward(Ia3Config config, string path, string source)
    {
        if (config.FeedforwardPattern is not { } pattern) return config.FeedforwardModules?.Any(f => path.EndsWith(f, StringComparison.Ordinal)) ?? false;
        try
        {
            return Regex.IsMatch(path, $"^(?:{pattern})$", RegexOptions.CultureInvariant);
        }
        catch (ArgumentException e)
        {
            throw new PeftDslException($"{source}: feedforward_modules '{pattern}' is not a valid regular expression: {e.Message}");
        }
    }
}
