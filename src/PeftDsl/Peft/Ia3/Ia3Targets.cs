using System.Text.RegularExpressions;
using PeftDsl.Errors;
using PeftDsl.Modules;
using PeftDsl.Peft.Lora;

namespace PeftDsl.Peft.Ia3;

/// <summary>One projection an IA3 adapter scales, and whether it scales the input (a feed-forward module).
/// <paramref name="Slice"/>: the output columns the vector covers (NeMo's keys and values of a fused projection);
/// null for all of them.</summary>
public sealed record Ia3Target(string Path, PeftLinear Linear, bool Feedforward, (long Start, long Length)? Slice = null)
{
    /// <summary>The vector's shape: [1, in] on the input, [columns, 1] on the output.</summary>
    public long[] Shape => Feedforward ? [1L, Linear.InFeatures] : [Slice?.Length ?? Linear.OutFeatures, 1L];
}

/// <summary>Which projections an <see cref="Ia3Config"/> selects: peft's target rule (the one LoRA uses) and its
/// feed-forward rule (<c>_check_target_module_feedforward</c>: the path ends with a name, or fully matches a pattern).</summary>
public static class Ia3Targets
{
    /// <summary>peft's <c>TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING</c> and feed-forward mapping.</summary>
    private static readonly Dictionary<string, (string[] Targets, string[] Feedforward)> PeftDefaults = new(StringComparer.Ordinal)
    {
        ["gpt2"] = (["c_attn", "mlp.c_proj"], ["mlp.c_proj"]),
        ["llama"] = (["k_proj", "v_proj", "down_proj"], ["down_proj"]),
        ["mistral"] = (["k_proj", "v_proj", "down_proj"], ["down_proj"]),
        ["qwen2"] = (["q_proj", "v_proj", "down_proj"], ["down_proj"]),
        ["qwen3"] = (["q_proj", "v_proj", "down_proj"], ["down_proj"]),
        ["gemma2"] = (["q_proj", "v_proj", "down_proj"], ["down_proj"]),
        ["gemma3_text"] = (["q_proj", "v_proj", "down_proj"], ["down_proj"]),
        ["gpt_neox"] = (["query_key_value", "dense_4h_to_h"], ["dense_4h_to_h"]),
        ["t5"] = (["k", "v", "wo"], ["wo"]),
        // peft's feed-forward list for mt5 is empty: wi_1 is scaled on its output, unlike t5's wo on its input.
        ["mt5"] = (["k", "v", "wi_1"], []),
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

    /// <summary>peft's placement: the projections the config's targets select (LoRA's rule, peft's names only), each
    /// marked feed-forward or not; throws when nothing matches, listing the model's linear modules.</summary>
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

    /// <summary>
    /// NeMo's placement: the model's IA3 sites. Key and value sites scale their columns of the projection's output
    /// (after the QKV split, before rotary, as NeMo's infused adapters); the MLP site scales the down projection's
    /// input, which is the activation (after the gate for a gated MLP). Grouped-query keys and values have the kv
    /// heads' width. The key and value columns of one fused projection are adjacent, so they form one slice.
    /// </summary>
    public static IReadOnlyList<Ia3Target> ResolveNemo(IReadOnlyList<PeftSite> sites, IReadOnlyList<(string Path, PeftLinear Linear)> linears, string source)
    {
        var byPath = linears.ToDictionary(l => l.Path, l => l.Linear, StringComparer.Ordinal);
        if (linears.FirstOrDefault(l => l.Linear.InterleavedQkv) is { Path: { } interleaved })
            throw new PeftDslException($"{source}: NeMo's IA3 placement scales the key and value columns after the QKV split, but {interleaved} " +
                                       "interleaves q, k and v per head (GPT-NeoX), which this placement does not compute; use peft's placement (the default)");
        var result = new List<Ia3Target>();
        foreach (var group in sites.Where(s => s.Kind == SiteKind.Ia3).GroupBy(s => s.ModulePath))
        {
            var linear = byPath[group.Key];
            if (group.Any(s => s.Name == SiteNames.Ia3Mlp))
            {
                result.Add(new Ia3Target(group.Key, linear, Feedforward: true));
                continue;
            }
            var slices = group.Select(s => s.Slice ?? (0, linear.OutFeatures)).OrderBy(s => s.Start).ToList();
            var start = slices[0].Start;
            var end = start;
            foreach (var (s, length) in slices)
            {
                if (s != end) throw new PeftDslException($"{source}: the key and value columns of {group.Key} are not adjacent; NeMo's IA3 placement cannot scale them with one vector");
                end = s + length;
            }
            result.Add(new Ia3Target(group.Key, linear, Feedforward: false, start == 0 && end == linear.OutFeatures ? null : (start, end - start)));
        }
        if (result.Count == 0) throw new PeftDslException($"{source}: the model declares no IA3 site (keys, values or the MLP's down projection)");
        return result;
    }

    /// <summary>The shortest module-name suffixes that select exactly <paramref name="chosen"/> among
    /// <paramref name="linears"/> under peft's rule, so a NeMo-placed adapter's file names its modules as peft would.</summary>
    public static IReadOnlyList<string> PeftNames(IEnumerable<string> chosen, IReadOnlyList<(string Path, PeftLinear Linear)> linears)
    {
        var set = chosen.ToHashSet(StringComparer.Ordinal);
        if (set.Count == 0) return [];
        var depth = set.Max(p => p.Split('.').Length);
        for (var n = 1; n <= depth; n++)
        {
            var names = set.Select(p => string.Join('.', p.Split('.').TakeLast(n))).Distinct().ToList();
            if (linears.All(l => set.Contains(l.Path) == names.Any(t => l.Path == t || l.Path.EndsWith("." + t, StringComparison.Ordinal))))
                return names;
        }
        return set.ToList();
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
