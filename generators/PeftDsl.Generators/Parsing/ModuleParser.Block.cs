using System.Collections.Generic;
using System.Linq;
using Microsoft.CodeAnalysis;
using PeftDsl.Generators.Diagnostics;
using PeftDsl.Generators.Model;

namespace PeftDsl.Generators.Parsing
{
    internal sealed partial class ModuleParser
    {
        private static readonly string[] NormKinds = { "LayerNorm", "RmsNorm", "GemmaRmsNorm" };

        private BlockSpec? ParseBlock()
        {
            var a = kindAttribute;
            var dim = bindings.Required(a, "Dim", BindingKind.Size, type.Name);
            var normKind = NamedEnum(a, "Norm", NormKinds, "NormKind");
            var eps = bindings.Optional(a, "NormEps", BindingKind.Real, "1e-5");
            var parallel = bindings.Optional(a, "ParallelResidual", BindingKind.Flag, "false");
            if (parallel is { Expression: "true" } && Bindings.Named(a, "ParallelResidual") is not null)
                diagnostics.Add(DiagnosticDescriptors.LiteralComputation, Bindings.Where(a, "ParallelResidual"), "ParallelResidual", "true",
                    "a parallel residual", "use_parallel_residual");
            var sublayers = new List<SublayerSpec>();
            var named = new List<(Member?, AttributeData)>();
            var sublayerAttributes = new List<AttributeData>();
            foreach (var attribute in Components(AttributeNames.Sublayer))
            {
                var member = NameArgument(attribute);
                var module = ModuleArgument(attribute, 1, "[Sublayer]", ModuleKind.SelfAttention, ModuleKind.CrossAttention, ModuleKind.FeedForward);
                var normName = Bindings.Named(attribute, "Norm");
                Member? norm = null;
                if (string.IsNullOrEmpty(normName))
                    diagnostics.Add(DiagnosticDescriptors.MissingComponent, Bindings.Where(attribute), type.Name,
                        "Norm = \"…\" on [Sublayer(\"" + (member?.Name ?? "?") + "\")]: the checkpoint name of the norm in front of it");
                else
                    norm = Names.Member(normName, Bindings.Where(attribute, "Norm"), diagnostics);
                named.Add((member, attribute));
                var postNormName = Bindings.Named(attribute, "PostNorm");
                var postNorm = postNormName is null ? null : Names.Member(postNormName, Bindings.Where(attribute, "PostNorm"), diagnostics);
                if (postNorm is not null) named.Add((postNorm, attribute));
                // One norm shared by sublayers (GPT-J, Falcon: parallel) is declared once per sublayer under one name; a
                // block that is always sequential repeating a norm name is a mistake.
                if (!(parallel?.Expression != "false" && norm is not null && sublayers.Any(s => s.Norm.Name == norm.Name)))
                    named.Add((norm, attribute));
                if (member is null || module is null || norm is null) continue;
                var sublayerKind = KindsOf(TypeArgument(attribute, 1)!)[0];
                var dropout = bindings.Dropout(attribute, "Dropout");
                if (postNormName is not null && postNorm is null) continue;
                sublayers.Add(new SublayerSpec(member, module, sublayerKind, norm, AdapterSites[sublayerKind], dropout, postNorm));
                sublayerAttributes.Add(attribute);
            }
            CheckUnique(named);
            if (sublayers.Count == 0 && !diagnostics.HasErrors)
                diagnostics.Add(DiagnosticDescriptors.MissingComponent, type.Locations.FirstOrDefault(), type.Name, "at least one [Sublayer]");
            if (dim is null || eps is null || parallel is null || diagnostics.HasErrors) return null;
            // The documented order: self-attention, cross-attention, feed-forward; declaration order within each.
            var ordered = sublayers.OrderBy(s => System.Array.IndexOf(SublayerOrder, s.Kind));
            for (var i = 1; i < sublayers.Count && parallel?.Expression != "true"; i++)
            {
                var earlier = sublayers.Take(i).FirstOrDefault(s => System.Array.IndexOf(SublayerOrder, s.Kind) > System.Array.IndexOf(SublayerOrder, sublayers[i].Kind));
                if (earlier is not null)
                    diagnostics.Add(DiagnosticDescriptors.SublayerOrder, Bindings.Where(sublayerAttributes[i]), type.Name, sublayers[i].Member.Name, earlier.Member.Name);
            }
            return new BlockSpec(dim, normKind, eps, UniqueAdapterSites(ordered).ToEquatableArray(), parallel!);
        }

        private static readonly ModuleKind[] SublayerOrder = { ModuleKind.SelfAttention, ModuleKind.CrossAttention, ModuleKind.FeedForward };

        /// <summary>The adapter site after each kind of sublayer; the names are PeftDsl.Peft.SiteNames'.</summary>
        private static readonly Dictionary<ModuleKind, string> AdapterSites = new()
        {
            [ModuleKind.SelfAttention] = "attention_adapter",
            [ModuleKind.CrossAttention] = "cross_attention_adapter",
            [ModuleKind.FeedForward] = "mlp_adapter",
        };

        /// <summary>Two sublayers of one kind get numbered adapter sites (attention_adapter, attention_adapter_1).</summary>
        private static IEnumerable<SublayerSpec> UniqueAdapterSites(IEnumerable<SublayerSpec> sublayers)
        {
            var counts = new Dictionary<string, int>();
            foreach (var s in sublayers)
            {
                counts.TryGetValue(s.AdapterSite, out var n);
                counts[s.AdapterSite] = n + 1;
                yield return n == 0 ? s : s with { AdapterSite = s.AdapterSite + "_" + n };
            }
        }
    }
}
