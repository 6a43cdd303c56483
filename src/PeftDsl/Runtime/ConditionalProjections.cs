using PeftDsl.Errors;

namespace PeftDsl.Runtime;

/// <summary>Resolves projections declared with <c>When</c>: exactly one per required role must exist for a config.</summary>
public static class ConditionalProjections
{
    /// <summary>The one present candidate; a config that enables none or several is an error naming them.</summary>
    public static Modules.PeftLinear One(string module, string role, params (Modules.PeftLinear? Projection, string Name)[] candidates) =>
        AtMostOne(module, role, candidates) ?? throw new ConfigException(
            $"{module}: the config enables no {role} projection (candidates: {string.Join(", ", candidates.Select(c => c.Name))})");

    /// <summary>The present candidate, or null when the config enables none (an optional role); several present is an error.</summary>
    /// <param name="module">The DSL class, for the message.</param>
    /// <param name="role">The role the candidates fill, for the message.</param>
    /// <param name="candidates">Each conditional projection (null when its <c>When</c> flag is off) with its checkpoint name.</param>
    public static Modules.PeftLinear? AtMostOne(string module, string role, params (Modules.PeftLinear? Projection, string Name)[] candidates)
    {
        var present = candidates.Where(c => c.Projection is not null).ToList();
        if (present.Count > 1)
            throw new ConfigException($"{module}: the config enables several {role} projections ({string.Join(", ", present.Select(c => c.Name))})");
        return present.SingleOrDefault().Projection;
    }
}
