using System.Text.RegularExpressions;
using PeftDsl.Errors;
using PeftDsl.Modules;

namespace PeftDsl.Peft.Lora;

/// <summary>One projection an adapter attaches to, with its rank and alpha after the patterns.</summary>
public sealed record LoraTarget(string Path, PeftLinear Linear, int Rank, double Alpha);

/// <summary>
/// Which projections a <see cref="LoraConfig"/> selects, with peft's exact rules (<c>check_target_module_exists</c>,
/// <c>get_pattern_key</c>) extended with NeMo's site names and shorthands.
/// </summary>
public static class LoraTargets
{
    /// <summary>peft's <c>TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING</c> for the stock families.</summary>
    private static readonly Dictionary<string, string[]> PeftDefaults = new(StringComparer.Ordinal)
    {
        ["gpt2"] = ["c_attn"],
        ["llama"] = ["q_proj", "v_proj"],
        ["mistral"] = ["q_proj", "v_proj"],
        ["qwen2"] = ["q_proj", "v_proj"],
        ["qwen3"] = ["q_proj", "v_proj"],
        ["gemma2"] = ["q_proj", "v_proj"],
        ["gemma3_text"] = ["q_proj", "v_proj"],
        ["gpt_neox"] = ["query_key_value"],
        ["t5"] = ["q", "v"],
        ["mt5"] = ["q", "v"],
    };

    /// <summary>NeMo's shorthands; cross-attention groups count as attention.</summary>
    private static readonly Dictionary<string, string[]> Shorthands = new(StringComparer.Ordinal)
    {
        ["attention"] = [SiteNames.AttentionQkv, SiteNames.AttentionDense, SiteNames.AttentionQ, SiteNames.AttentionKv, SiteNames.CrossAttentionDense],
        ["mlp"] = [SiteNames.MlpFc1, SiteNames.MlpFc2],
        ["all"] = [SiteNames.AttentionQkv, SiteNames.AttentionDense, SiteNames.AttentionQ, SiteNames.AttentionKv, SiteNames.CrossAttentionDense, SiteNames.MlpFc1, SiteNames.MlpFc2],
        // peft's special value: every linear layer but the output head, which is never a site here.
        ["all-linear"] = [SiteNames.AttentionQkv, SiteNames.AttentionDense, SiteNames.AttentionQ, SiteNames.AttentionKv, SiteNames.CrossAttentionDense, SiteNames.MlpFc1, SiteNames.MlpFc2],
    };

    /// <summary>The prefix that marks a target written as one regular expression: <c>re:PATTERN</c>.</summary>
    public const string RegexPrefix = "re:";

    /// <summary>
    /// Targets written as text, read one way by every command (<c>--targets</c>, <c>--lora-targets</c>,
    /// <c>--feedforward</c>) and by the API: names separated by commas or spaces, each an exact module path, a module
    /// name or a dotted suffix of one (peft's rule: <c>c_attn</c>, <c>attn.c_proj</c>, <c>self_attn.q_proj</c>), or a
    /// NeMo site name or shorthand (<c>attention_qkv</c>, <c>attention</c>, <c>mlp</c>, <c>all</c>); or one regular
    /// expression that a whole module path must match, written <c>re:PATTERN</c> (peft's <c>target_modules</c> given as a
    /// string). Returns the names, or the pattern; <paramref name="source"/> names the option in errors.
    /// </summary>
    public static (IReadOnlyList<string>? Modules, string? Pattern) Parse(IEnumerable<string> values, string source)
    {
        var raw = values.Select(v => v.Trim()).Where(v => v.Length > 0).ToList();
        // A pattern is taken whole (it may hold commas or spaces), so it is looked for before names are split.
        if (raw.FirstOrDefault(v => v.StartsWith(RegexPrefix, StringComparison.Ordinal)) is { } regex)
        {
            if (raw.Count > 1)
                throw new PeftDslException($"{source}: a regular expression ({regex}) is the whole target, as peft's target_modules string is; " +
                                           "give it alone, or list names instead");
            var pattern = regex[RegexPrefix.Length..];
            if (pattern.Length == 0) throw new PeftDslException($"{source}: {RegexPrefix} needs a regular expression after it");
            _ = FullMatch(pattern, "");   // refuses an invalid expression now, naming it
            return (null, pattern);
        }
        var items = Items(raw).ToList();
        if (items.Count == 0) throw new PeftDslException($"{source} names no module; leave it out for the model's default targets");
        if (items.FirstOrDefault(i => i.StartsWith(RegexPrefix, StringComparison.Ordinal)) is { } late)
            throw new PeftDslException($"{source}: a regular expression ({late}) is the whole target; give it alone, or list names instead");
        return (items.Distinct().ToList(), null);
    }

    /// <summary>The entries of a list option given as separate values, or in one value separated by commas, spaces or
    /// tabs (<c>--targets</c>, <c>--trainable-tokens</c>, <c>--modules-to-save</c>).</summary>
    public static IEnumerable<string> Items(IEnumerable<string> raw) =>
        raw.SelectMany(v => v.Split([',', ' ', '\t'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));

    /// <summary>The target list a config means for a model type (peft's defaults when it names none).</summary>
    public static IReadOnlyList<string>? EffectiveTargets(LoraConfig config, string modelType, string source)
    {
        if (config.TargetModules is not null || config.TargetPattern is not null) return config.TargetModules;
        return PeftDefaults.TryGetValue(modelType, out var defaults)
            ? defaults
            : throw new PeftDslException($"{source}: target_modules is not set and peft has no default targets for model_type '{modelType}'; name the modules");
    }

    /// <summary>Every selected projection; a config that selects none is an error listing the model's linear modules.</summary>
    /// <param name="strict">Also refuse any single target name that selects nothing (a typo), not only a config
    /// that selects nothing at all as peft does.</param>
    public static IReadOnlyList<LoraTarget> Resolve(LoraConfig config, IReadOnlyList<(string Path, PeftLinear Linear)> linears,
        string modelType, string source, bool strict = false)
    {
        var targets = EffectiveTargets(config, modelType, source);
        if (strict && targets is not null)
            foreach (var name in targets.Where(t => !linears.Any(l => NameMatches(t, l.Path, LinearSite(l.Path, l.Linear), nemo: true))))
                throw new PeftDslException($"{source}: target '{name}' matches no linear module of the model; its linear modules are: " +
                                           string.Join(", ", linears.Select(l => l.Path.Split('.')[^1]).Distinct()) +
                                           "; NeMo names: attention_qkv, attention_dense, mlp_fc1, mlp_fc2, attention_q, attention_kv, attention, mlp, all");
        var result = new List<LoraTarget>();
        foreach (var (path, linear) in linears)
        {
            if (!Selects(config, targets, path, linear)) continue;
            var rank = PatternValue(config.RankPattern, path) ?? config.R;
            var alpha = PatternValue(config.AlphaPattern, path) ?? config.Alpha;
            result.Add(new LoraTarget(path, linear, rank, alpha));
        }
        if (result.Count == 0)
        {
            var described = config.TargetPattern is { } p ? $"target_modules '{p}'" : $"target_modules [{string.Join(", ", targets!)}]";
            var names = linears.Select(l => l.Path.Split('.')[^1]).Distinct();
            throw new PeftDslException(
                $"{source}: {described} match no linear module of the model" +
                (config.LayersToTransform is { } layers ? $" in layers [{string.Join(", ", layers)}]" : "") +
                $"; its linear modules are: {string.Join(", ", names)}");
        }
        return result;
    }

    /// <summary>peft's rule: exclusions first; a regex target must match the whole path (and ignores layer
    /// selection); an exact path is taken as is; a suffix or NeMo name then passes the layer filter.</summary>
    /// <param name="nemo">False applies peft's rule alone, as peft will read a saved config (no NeMo names).</param>
    public static bool Selects(LoraConfig config, IReadOnlyList<string>? targets, string path, PeftLinear linear, bool nemo = true)
    {
        var site = LinearSite(path, linear);
        if (config.ExcludePattern is { } ex && FullMatch(ex, path)) return false;
        if (config.ExcludeModules is { } excluded && excluded.Any(e => NameMatches(e, path, site, nemo))) return false;
        if (config.TargetPattern is { } pattern) return FullMatch(pattern, path);
        if (targets!.Contains(path)) return true;
        if (!targets!.Any(t => NameMatches(t, path, site, nemo))) return false;
        return config.LayersToTransform is not { } layers || LayerIndex(config, path) is { } index && layers.Contains(index);
    }

    /// <summary>peft's <c>get_pattern_key</c>: the first pattern key <c>k</c> for which <c>(.*\.)?(k)$</c> matches.</summary>
    public static T? PatternValue<T>(IReadOnlyDictionary<string, T> patterns, string path) where T : struct
    {
        foreach (var (key, value) in patterns)
            if (FullMatch($@"(.*\.)?({key})", path)) return value;
        return null;
    }

    private static PeftSite LinearSite(string path, PeftLinear linear) => linear.Sites(path).First(s => s.Kind == SiteKind.Linear);

    private static bool NameMatches(string target, string path, PeftSite site, bool nemo) =>
        path == target || path.EndsWith("." + target, StringComparison.Ordinal)
        || nemo && (site.Matches(target) || Shorthands.TryGetValue(target, out var names) && names.Contains(site.Name));

    /// <summary>peft's layer index: the number after the layers list (<c>layers_pattern</c>), or the first
    /// numbered segment after one named segment.</summary>
    private static int? LayerIndex(LoraConfig config, string path)
    {
        var patterns = config.LayersPattern is { Count: > 0 } named
            ? named.Select(p => $@"^.*?\.{p}\.(\d+)\.").ToList()
            : [@"^.*?\.[^.]*\.(\d+)\."];
        foreach (var pattern in patterns)
        {
            Match match;
            try
            {
                match = Regex.Match(path, pattern, RegexOptions.CultureInvariant);
            }
            catch (ArgumentException e)
            {
                throw new PeftDslException($"layers_pattern gives the invalid regular expression '{pattern}': {e.Message}");
            }
            if (match.Success) return int.Parse(match.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
        }
        return null;
    }

    private static bool FullMatch(string pattern, string path)
    {
        try
        {
            return Regex.IsMatch(path, $"^(?:{pattern})$", RegexOptions.CultureInvariant);
        }
        catch (ArgumentException e)
        {
            throw new PeftDslException($"'{pattern}' is not a valid regular expression: {e.Message}");
        }
    }
}
