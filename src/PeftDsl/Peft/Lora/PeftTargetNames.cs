using PeftDsl.Modules;

namespace PeftDsl.Peft.Lora;

/// <summary>
/// The <c>target_modules</c> to save so that peft, which knows no NeMo site names, selects exactly the projections
/// this adapter is on: the config's own list when peft reads it the same way, else the shortest dotted suffixes
/// that select those projections and no other.
/// </summary>
internal static class PeftTargetNames
{
    public static IReadOnlyList<string>? For(LoraConfig config, IReadOnlyList<(string Path, PeftLinear Linear)> linears,
        IReadOnlySet<string> targeted, string modelType)
    {
        if (config.TargetPattern is not null) return null;
        var declared = LoraTargets.EffectiveTargets(config, modelType, "LoraConfig")!;
        var peftOnly = config with { TargetModules = declared };
        if (declared.All(t => linears.Any(l => l.Path == t || l.Path.EndsWith("." + t, StringComparison.Ordinal)))
            && SelectedBy(peftOnly, declared, linears, nemo: false).SetEquals(targeted))
            return declared;

        var segments = targeted.ToDictionary(p => p, _ => 1);
        while (true)
        {
            var names = targeted.Order(StringComparer.Ordinal).Select(p => Suffix(p, segments[p])).Distinct().ToList();
            var wrong = SelectedBy(config with { TargetModules = names }, names, linears, nemo: false)
                .Where(p => !targeted.Contains(p)).ToList();
            if (wrong.Count == 0) return names;
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
            if (!grew) return names;   // full paths: peft takes exact paths as they are
        }
    }

    /// <summary>What peft would select: by path and suffix only (<paramref name="nemo"/> false ignores site names).</summary>
    private static HashSet<string> SelectedBy(LoraConfig config, IReadOnlyList<string> names, IReadOnlyList<(string Path, PeftLinear Linear)> linears, bool nemo) =>
        linears.Where(l => names.Any(n => l.Path == n || l.Path.EndsWith("." + n, StringComparison.Ordinal))
                           && LoraTargets.Selects(config, names, l.Path, l.Linear))
            .Select(l => l.Path).ToHashSet();

    private static string Suffix(string path, int segments) => string.Join(".", path.Split('.').TakeLast(segments));
}
