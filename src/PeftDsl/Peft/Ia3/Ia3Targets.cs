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
            return config.FeedforwardModules is null && config.FeedforwardPattern is null && PeftDefaults.TryGetValue(modelType, out var d)
                ? config with { FeedforwardModules = d.Feedforward.Where(f => config.TargetModules?.Contains(f) ?? true).ToList() }
                : config;
        return PeftDefaults.TryGetValue(modelType, out var defaults)
            ? config with { TargetModules = defaults.Targets, FeedforwardModules = config.FeedforwardModules ?? defaults.Feedforward }
            : throw new PeftDslException($"{source}: target_modules is not set and peft has no IA3 default for model_type '{modelType}'; name the modules");
    }

    public static IReadOnlyList<Ia3Target> Resolve(Ia3Config config, IReadOnlyList<(string Path, PeftLinear Linear)> linears, string source)
    {
        // The selection rule is LoRA's (peft's check_target_module_exists); only the target fields matter to it.
        var selection = new LoraConfig { TargetModules = config.TargetModules, TargetPattern = config.TargetPattern, ExcludeModules = config.ExcludeModules };
        var result = linears.Where(l => LoraTargets.Selects(selection, config.TargetModules, l.Path, l.Linear))
            .Select(l => new Ia3Target(l.Path, l.Linear, IsFeedforward(config, l.Path))).ToList();
        if (result.Count == 0)
            throw new PeftDslException($"{source}: target_modules [{string.Join(", ", config.TargetModules ?? [config.TargetPattern!])}] match no linear module " +
                                       $"of the model; its linear modules are: {string.Join(", ", linears.Select(l => l.Path.Split('.')[^1]).Distinct())}");
        return result;
    }

    private static bool IsFeedforward(Ia3Config config, string path) =>
        config.FeedforwardPattern is { } pattern
            ? Regex.IsMatch(path, $"^(?:{pattern})$", RegexOptions.CultureInvariant)
            : config.FeedforwardModules?.Any(f => path.EndsWith(f, StringComparison.Ordinal)) ?? false;
}
