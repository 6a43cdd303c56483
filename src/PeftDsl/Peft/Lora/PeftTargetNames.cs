using PeftDsl.Modules;

namespace PeftDsl.Peft.Lora;

/// <summary>
/// <c>target_modules</c> and <c>exclude_modules</c> to save so that peft, which knows no NeMo site names, selects
/// exactly the projections this adapter is on: the config's own fields when peft reads them the same way; else the
/// shortest dotted suffixes that select those projections and no other, with no exclusions left to misread.
/// </summary>
internal static class PeftTargetNames
{
    public static LoraConfig For(LoraConfig config, IReadOnlyList<(string Path, PeftLinear Linear)> linears,
        IReadOnlySet<string> targeted, string modelType)
    {
        var declared = LoraTargets.EffectiveTargets(config, modelType, "LoraConfig");
        var asDeclared = config with { TargetModules = declared };
        if (SelectedByPeft(asDeclared, linears).SetEquals(targeted)) return asDeclared;

        var segments = targeted.ToDictionary(p => p, _ => 1);
        var plain = config with { TargetPattern = null, ExcludeModules = null, ExcludePattern = null };
        while (true)
        {
            var names = targeted.Order(StringComparer.Ordinal).Select(p => Suffix(p, segments[p])).Distinct().ToList();
            var candidate = plain with { TargetModules = names };
            var wrong = SelectedByPeft(candidate, linears).Where(p => !targeted.Contains(p)).ToList();
            if (wrong.Count == 0) return candidate;
            var grew = false;
            foreach (var p in targeted)
            {
                var suffix = Suffix(p, segments[p]);
                if (segments[p] < p.Split('.').Length && wrong.Any(w => w == suffix || w.EndsWith("." + suffix, StringComparison.Ordinal)))
                {
                    segments[p]++;
                    grew = true;
                }
            }
            // Full paths left: peft takes an exact path as is, whatever the layer selection says.
            if (!grew) return candidate with { TargetModules = targeted.Order(StringComparer.Ordinal).ToList() };
        }
    }

    /// <summary>What peft itself selects with this config: module paths and suffixes only.</summary>
    private static HashSet<string> SelectedByPeft(LoraConfig config, IReadOnlyList<(string Path, PeftLinear Linear)> linears) =>
        linears.Where(l => LoraTargets.Selects(config, config.TargetModules, l.Path, l.Linear, nemo: false)).Select(l => l.Path).ToHashSet();

    private static string Suffix(string path, int segments) => string.Join(".", path.Split('.').TakeLast(segments));
}
