using PeftDsl.Errors;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftDsl.Peft.Lora;

/// <summary>
/// peft's <c>add_weighted_adapter</c> for <c>linear</c> and <c>cat</c>. The new adapter copies the first adapter's
/// config with r = alpha = the new rank and no patterns, as peft does, and without rsLoRA, so its scaling is 1
/// (peft keeps rsLoRA, which scales the result by √r; we do not, and say so in the saved config).
/// <list type="bullet">
/// <item><c>linear</c> (equal ranks): A = Σ sign(wᵢsᵢ)√|wᵢsᵢ|·Aᵢ, B = Σ √|wᵢsᵢ|·Bᵢ — the sign goes on A only.</item>
/// <item><c>cat</c>: A = [w₁s₁A₁; w₂s₂A₂; …], B = [B₁ B₂ …], so B·A = Σ wᵢsᵢBᵢAᵢ exactly; rank Σrᵢ.</item>
/// </list>
/// </summary>
internal static class WeightedAdapters
{
    public static void Add(AdapterRegistry registry, IReadOnlyList<string> adapters, IReadOnlyList<double> weights, string name, string combination)
    {
        if (adapters.Count == 0) throw new PeftDslException("add_weighted_adapter: no adapters given");
        if (adapters.Count != weights.Count)
            throw new PeftDslException($"add_weighted_adapter: {adapters.Count} adapters but {weights.Count} weights");
        if (weights.Any(w => !double.IsFinite(w))) throw new PeftDslException("add_weighted_adapter: weights must be finite numbers");
        var configs = adapters.Select(a => registry[a]).ToList();
        if (configs.Any(c => c.UseDora))
            throw new PeftDslException("add_weighted_adapter: DoRA adapters cannot be combined (their magnitudes do not add)");
        if (adapters.Count == 1) combination = "linear";
        var ranks = configs.Select(c => c.RankPattern.Count == 0 ? c.R : Math.Max(c.R, c.RankPattern.Values.Max())).ToList();
        var rank = combination switch
        {
            "linear" when ranks.Distinct().Count() == 1 => ranks[0],
            "linear" => throw new PeftDslException($"add_weighted_adapter: 'linear' needs equal ranks, got {string.Join(", ", ranks)}; use 'cat'"),
            "cat" => ranks.Sum(),
            _ => throw new PeftDslException($"add_weighted_adapter: combination '{combination}' is not supported (linear, cat)"),
        };
        var linears = registry.Linears();
        var sites = linears.Where(l => adapters.Any(l.Linear.Lora.Has)).Select(l => l.Path).ToHashSet();
        // peft's union of the target lists, when that selects exactly the sites the adapters are on; otherwise
        // (layer selections, regexes, exclusions that differ) the sites themselves.
        var first = configs[0];
        var union = configs.All(c => c.TargetPattern is null)
            ? configs.SelectMany(c => LoraTargets.EffectiveTargets(c, registry.ModelType, "add_weighted_adapter")!).Distinct().ToList()
            : null;
        var combined = first with
        {
            R = rank,
            Alpha = rank,
            // peft copies use_rslora too, which scales the combination by √r; scaling 1 keeps `cat` exact. The saved
            // config says use_rslora false, so peft reads the combined adapter the same way.
            UseRsLora = false,
            RankPattern = new Dictionary<string, int>(),
            AlphaPattern = new Dictionary<string, double>(),
            TargetModules = union,
            TargetPattern = null,
            LayersToTransform = null,
            LayersPattern = null,
            ExcludeModules = null,
            ExcludePattern = null,
        };
        if (union is null || !linears.Where(l => LoraTargets.Selects(combined, union, l.Path, l.Linear)).Select(l => l.Path).ToHashSet().SetEquals(sites))
            combined = combined with { TargetModules = linears.Select(l => l.Path).Where(sites.Contains).ToList() };
        registry.Inject(name, combined, "add_weighted_adapter", initialize: false);

        using var noGrad = no_grad();
        foreach (var (_, linear) in linears.Where(l => l.Linear.Lora.Has(name)))
        {
            using var scope = NewDisposeScope();
            var lora = linear.Lora;
            var a = lora.A(name);
            var b = lora.B(name);
            a.zero_();
            b.zero_();
            var offset = 0L;
            for (var i = 0; i < adapters.Count; i++)
            {
                if (!lora.Has(adapters[i])) continue;
                var s = lora.Settings(adapters[i]);
                var ws = weights[i] * s.Scaling;
                var ai = lora.A(adapters[i]);
                var bi = lora.B(adapters[i]);
                if (combination == "cat")
                {
                    a.narrow(0, offset, s.Rank).copy_(ai * ws);
                    b.narrow(1, offset, s.Rank).copy_(bi);
                    offset += s.Rank;
                }
                else
                {
                    var root = Math.Sqrt(Math.Abs(ws));
                    // A site where rank_pattern gave this adapter a smaller rank fills the leading rows.
                    a.narrow(0, 0, s.Rank).add_(ai, ws >= 0 ? root : -root);
                    b.narrow(1, 0, s.Rank).add_(bi, root);
                }
            }
        }
        registry.SetTrainable(name, false);
    }
}
