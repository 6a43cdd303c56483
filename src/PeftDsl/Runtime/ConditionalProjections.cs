using PeftDsl.Errors;

namespace PeftDsl.Runtime;

/// <summary>Resolves projections declared with <c>When</c>: exactly one per required role must exist for a config.</summary>
public static class ConditionalProjections
{
    /// <summary>The one present candidate; a config that enables none or several is an error naming them.</summary>
    public static Modules.PeftLinear One(string module, string role, params (Modules.PeftLinear? Projection, string Name)[] candidates) =>
        AtMostOne(module, role, candidates) ?? throw new ConfigException(
            $"{module}: the config enables no {role} projection (candidates: {string.Join(", ", candidates.Select(c => c.Name))})");

    public static Modules.PeftLinear? AtMostOne(string module, string role, params (Modules.PeftLinear? Projection, string Name)[] candidates)
    {
        var present = candidates.Where(c => c.Projection is not null).ToList();
        if (present.Count > 1)
            throw new ConfigException($"{module}: the config enables several {role} projections ({string.Join(", ", present.Select(c => c.Name))})");
        return present.SingleOrDefault().Projection;
    }
}
