using PeftDsl.Checkpoints;
using PeftDsl.Errors;
using PeftDsl.Runtime;
using TorchSharp;
using static TorchSharp.torch;
using TorchSharp.Modules;

namespace PeftDsl.Peft;

/// <summary>Which family a parameter belongs to: the frozen base model or one of the PEFT methods.</summary>
public enum PeftMethod
{
    Base,
    Lora,
    Adapter,
    Ia3,
    PromptLearning,
}

/// <summary>A selection of parameters. Null means "any". Sites are NeMo names, full module paths or peft-style
/// module-name suffixes (<c>c_attn</c>, <c>mlp.c_proj</c>).</summary>
public sealed record ParameterQuery(PeftMethod? Method = null, IReadOnlyList<string>? Sites = null, IReadOnlyList<int>? Layers = null);

/// <summary>A parameter with the key it is saved under and where it sits.</summary>
public sealed record SelectedParameter(string Name, Parameter Parameter, PeftMethod Method, PeftSite? Site, int? Layer);

/// <summary>Site discovery and the trainable-parameter filter over any model built from the DSL.</summary>
public static class ParameterSelection
{
    /// <summary>Every PEFT site in the model, in module order.</summary>
    public static IReadOnlyList<PeftSite> Sites(this nn.Module model) =>
        CheckpointLayout.ModulesWithRoot(model)
            .SelectMany(m => m.Module is IPeftSiteOwner owner ? owner.Sites(m.Path) : [])
            .ToList();

    /// <summary>
    /// The parameters that match <paramref name="query"/>. A site target that matches no site is an error that
    /// lists the known names, so a typo never selects nothing silently.
    /// </summary>
    public static IReadOnlyList<SelectedParameter> SelectParameters(this nn.Module model, ParameterQuery query)
    {
        var all = Describe(model);
        if (query.Sites is { } targets)
        {
            var sites = model.Sites();
            foreach (var target in targets.Where(t => !sites.Any(s => s.Matches(t))))
                throw new PeftDslException(
                    $"site '{target}' matches no site of {model.GetName()}; known site names: " +
                    string.Join(", ", sites.Select(s => s.Name).Distinct()) + "; module names: " +
                    string.Join(", ", sites.Select(s => s.ModulePath.Split('.')[^1]).Distinct()));
        }
        return all.Where(p =>
                (query.Method is null || p.Method == query.Method)
                && (query.Sites is null || (p.Site is { } s && query.Sites.Any(s.Matches)))
                && (query.Layers is null || (p.Layer is { } l && query.Layers.Contains(l))))
            .ToList();
    }

    /// <summary>Makes exactly <paramref name="selected"/> trainable and freezes everything else.</summary>
    public static void TrainOnly(this nn.Module model, IEnumerable<SelectedParameter> selected)
    {
        var keep = selected.Select(s => s.Parameter.Handle).ToHashSet();
        foreach (var (_, p) in model.named_parameters())
            p.requires_grad = keep.Contains(p.Handle);
    }

    private static List<SelectedParameter> Describe(nn.Module model)
    {
        var result = new List<SelectedParameter>();
        var layers = new List<(string Prefix, int Layer)>();
        foreach (var (path, module) in CheckpointLayout.ModulesWithRoot(model))
        {
            if (module is IBlockModule block) layers.Add((path + ".", block.Layer));
            var site = module is IPeftSiteOwner owner ? owner.Sites(path).FirstOrDefault(s => s.Kind == SiteKind.Linear) : null;
            var layer = layers.LastOrDefault(l => (path + ".").StartsWith(l.Prefix, StringComparison.Ordinal));
            foreach (var (name, p) in module.named_parameters(recurse: false))
                result.Add(new SelectedParameter(Modules.ModulePath.Join(path, name), p, PeftMethod.Base, site,
                    layer.Prefix is null ? null : layer.Layer));
        }
        return result;
    }
}
