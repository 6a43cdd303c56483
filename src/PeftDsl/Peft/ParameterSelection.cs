using PeftDsl.Checkpoints;
using PeftDsl.Errors;
using PeftDsl.Runtime;
using TorchSharp;
using static TorchSharp.torch;
using TorchSharp.Modules;

namespace PeftDsl.Peft;

/// <summary>A selection of parameters. Null means "any". Sites are NeMo names, full module paths or peft-style
/// module-name suffixes (<c>c_attn</c>, <c>mlp.c_proj</c>); adapters are adapter names.</summary>
public sealed record ParameterQuery(PeftMethod? Method = null, IReadOnlyList<string>? Sites = null, IReadOnlyList<int>? Layers = null,
    IReadOnlyList<string>? Adapters = null);

/// <summary>A parameter with its state-dict name, its method, the adapter it belongs to (null for the base), and
/// where it sits.</summary>
public sealed record SelectedParameter(string Name, Parameter Parameter, PeftMethod Method, PeftSite? Site, int? Layer,
    string? Adapter = null);

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
        var all = model.AllParameters();
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
                && (query.Layers is null || (p.Layer is { } l && query.Layers.Contains(l)))
                && (query.Adapters is null || (p.Adapter is { } a && query.Adapters.Contains(a))))
            .ToList();
    }

    /// <summary>Makes exactly <paramref name="selected"/> trainable and freezes everything else.</summary>
    public static void TrainOnly(this nn.Module model, IEnumerable<SelectedParameter> selected)
    {
        var keep = selected.Select(s => s.Parameter.Handle).ToHashSet();
        foreach (var (_, p) in model.named_parameters())
            p.requires_grad = keep.Contains(p.Handle);
    }

    /// <summary>Every parameter that requires a gradient, with its name.</summary>
    public static IReadOnlyList<SelectedParameter> TrainableParameters(this nn.Module model) =>
        model.AllParameters().Where(p => p.Parameter.requires_grad).ToList();

    /// <summary>Every parameter, tagged with its method: a PEFT container's children (<c>lora_A.{adapter}</c>, …)
    /// belong to that method and adapter, everything else to the base model.</summary>
    public static IReadOnlyList<SelectedParameter> AllParameters(this nn.Module model)
    {
        var result = new List<SelectedParameter>();
        var layers = new List<(string Prefix, int Layer)>();
        var owners = new List<(string Prefix, PeftSite? Site)>();
        var modules = CheckpointLayout.ModulesWithRoot(model).ToList();
        foreach (var (path, module) in modules)
        {
            if (module is IBlockModule block) layers.Add((path + ".", block.Layer));
            if (module is IPeftSiteOwner owner) owners.Add((path + ".", owner.Sites(path).FirstOrDefault(s => s.Kind == SiteKind.Linear)));
        }
        foreach (var (path, module) in modules)
        {
            var dotted = path + ".";
            var layer = layers.Where(l => dotted.StartsWith(l.Prefix, StringComparison.Ordinal)).Select(l => (int?)l.Layer).LastOrDefault();
            var (method, adapter, ownerPath) = MethodOf(path);
            // IA3's ia3_l holds its vectors directly, named after their adapter (peft's ParameterDict).
            var vectors = module is Ia3.Ia3Vectors;
            if (vectors) (method, ownerPath) = (PeftMethod.Ia3, path[..path.LastIndexOf('.')]);
            // LoRA's trainable tokens hold their rows directly too, named after their adapter (peft's ParameterDict).
            if (path.EndsWith(".token_adapter.trainable_tokens_delta", StringComparison.Ordinal))
            {
                vectors = true;
                (method, ownerPath) = (PeftMethod.Lora, null);
            }
            PeftSite? site = module is IPeftSiteOwner o ? o.Sites(path).FirstOrDefault(s => s.Kind == SiteKind.Linear)
                : ownerPath is null ? null : owners.FirstOrDefault(w => w.Prefix == ownerPath + ".").Site;
            foreach (var (name, p) in module.named_parameters(recurse: false))
                result.Add(new SelectedParameter(Modules.ModulePath.Join(path, name), p, method, site, layer, vectors ? name : adapter));
        }
        return result;
    }

    /// <summary>peft's container names → method; the segment after the container is the adapter name.</summary>
    private static readonly Dictionary<string, PeftMethod> Containers = new(StringComparer.Ordinal)
    {
        ["lora_A"] = PeftMethod.Lora,
        ["lora_B"] = PeftMethod.Lora,
        ["lora_magnitude_vector"] = PeftMethod.Lora,
        ["prompt_encoder"] = PeftMethod.PromptLearning,
        ["bottleneck"] = PeftMethod.Adapter,
        // LoRA's modules_to_save: whole copies of the embedding or head (modules_to_save.{adapter}.weight).
        ["modules_to_save"] = PeftMethod.Lora,
    };

    private static (PeftMethod Method, string? Adapter, string? OwnerPath) MethodOf(string path)
    {
        var parts = path.Split('.');
        for (var i = parts.Length - 2; i >= 0; i--)
            if (Containers.TryGetValue(parts[i], out var method))
                return (method, parts[i + 1], string.Join(".", parts.Take(i)));
        return (PeftMethod.Base, null, null);
    }
}
