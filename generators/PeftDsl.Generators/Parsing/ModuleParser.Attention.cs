using System.Collections.Generic;
using System.Linq;
using Microsoft.CodeAnalysis;
using PeftDsl.Generators.Diagnostics;
using PeftDsl.Generators.Model;

namespace PeftDsl.Generators.Parsing
{
    internal sealed partial class ModuleParser
    {
        // Values of PeftDsl.Dsl.ProjectionRole, in declaration order.
        private static readonly string[] Roles = { "Qkv", "Query", "Key", "Value", "KeyValue", "Output", "Gate", "Up", "Down", "GateUp" };
        private static readonly string[] Layouts = { "Linear", "Conv1D" };
        private static readonly string[] QkvLayouts = { "Blocks", "Interleaved" };
        private static readonly string[] AttentionRoles = { "Qkv", "Query", "Key", "Value", "KeyValue", "Output" };
        private static readonly string[] FeedForwardRoles = { "Gate", "Up", "Down", "GateUp" };

        private static readonly string[] CrossAttentionRoles = { "Query", "Key", "Value", "KeyValue", "Output" };

        private AttentionSpec? ParseAttention(bool cross)
        {
            var a = kindAttribute;
            var dim = bindings.Required(a, "Dim", BindingKind.Size, type.Name);
            var heads = bindings.Required(a, "Heads", BindingKind.Size, type.Name);
            var kvHeads = cross ? null : bindings.Optional(a, "KvHeads", BindingKind.Size);
            var headDim = bindings.Optional(a, "HeadDim", BindingKind.Size);
            if (headDim is null && dim?.Literal is { } d && heads?.Literal is { } h && d % h != 0)
                diagnostics.Add(DiagnosticDescriptors.SizesDoNotDivide, Bindings.Where(a, "Heads"), type.Name,
                    $"Dim {d} is not divisible by Heads {h}; declare HeadDim or fix the sizes");
            if (kvHeads?.Literal is { } kv && heads?.Literal is { } qh && qh % kv != 0)
                diagnostics.Add(DiagnosticDescriptors.SizesDoNotDivide, Bindings.Where(a, "KvHeads"), type.Name,
                    $"Heads {qh} is not a multiple of KvHeads {kv}");
            var (projections, roles) = ParseProjections(cross ? CrossAttentionRoles : AttentionRoles,
                cross ? "[CrossAttention]" : "[SelfAttention]", allowConditional: false);
            // A projection with a misplaced role was reported already; judging the form without it would only
            // add a second, misleading error.
            if (roles.Count == Components(AttributeNames.Projection).Count()) CheckAttentionForm(roles);
            var relativeBias = cross ? null : ParseRelativeBias(a);
            var causal = !cross && Bindings.NamedValue(a, "Causal", false);
            var window = cross ? null : bindings.Optional(a, "SlidingWindow", BindingKind.Window);
            if (window?.Literal is > 0)
                diagnostics.Add(DiagnosticDescriptors.LiteralComputation, Bindings.Where(a, "SlidingWindow"), "SlidingWindow", window.Display,
                    "a sliding window", "sliding_window");
            if (window is not null && !causal)
                diagnostics.Add(DiagnosticDescriptors.ConflictingProjections, Bindings.Where(a, "SlidingWindow"), type.Name,
                    "SlidingWindow needs Causal = true (the window counts back from each query)");
            var dropout = bindings.Dropout(a, "Dropout");
            var headNorms = cross ? null : ParseHeadNorms(a);
            var softcap = cross ? null : bindings.Optional(a, "Softcap", BindingKind.Softcap);
            if (softcap?.Literal is > 0)
                diagnostics.Add(DiagnosticDescriptors.LiteralComputation, Bindings.Where(a, "Softcap"), "Softcap", softcap.Display,
                    "soft-capped attention logits", "attn_logit_softcapping");
            if (softcap is not null && relativeBias is not null)
                diagnostics.Add(DiagnosticDescriptors.ConflictingProjections, Bindings.Where(a, "Softcap"), type.Name,
                    "Softcap cannot be combined with RelativeBias (no known architecture caps biased scores)");
            var queryScalar = cross ? null : bindings.Optional(a, "QueryScalar", BindingKind.Real);
            if (queryScalar?.Literal is not null)
                diagnostics.Add(DiagnosticDescriptors.LiteralComputation, Bindings.Where(a, "QueryScalar"), "QueryScalar", queryScalar.Display,
                    "the attention scaling", "query_pre_attn_scalar");
            if (queryScalar is not null && !Bindings.NamedValue(a, "Scaled", true))
                diagnostics.Add(DiagnosticDescriptors.ConflictingProjections, Bindings.Where(a, "QueryScalar"), type.Name,
                    "QueryScalar sets the score scaling, which Scaled = false turns off; declare one of them");
            var layerTypes = cross ? null : bindings.Optional(a, "LayerTypes", BindingKind.LayerTypes);
            if (layerTypes is not null && window is null)
                diagnostics.Add(DiagnosticDescriptors.ConflictingProjections, Bindings.Where(a, "LayerTypes"), type.Name,
                    "LayerTypes picks the layers that apply SlidingWindow; declare SlidingWindow too");
            if (dim is null || heads is null || diagnostics.HasErrors) return null;
            return new AttentionSpec(dim, heads, kvHeads, headDim, causal, !cross && Bindings.NamedValue(a, "Rotary", false),
                Bindings.NamedValue(a, "Scaled", true), cross, relativeBias, projections.ToEquatableArray(), window, dropout, headNorms,
                softcap is { Literal: 0.0 } ? null : softcap, queryScalar, layerTypes);
        }

        /// <summary>QueryNorm and KeyNorm come as a pair: a norm on one side only is no architecture we know.</summary>
        private HeadNormSpec? ParseHeadNorms(AttributeData a)
        {
            var (queryName, keyName) = (Bindings.Named(a, "QueryNorm"), Bindings.Named(a, "KeyNorm"));
            if (queryName is null && keyName is null)
            {
                foreach (var argument in new[] { "HeadNormEps", "HeadNormKind" })
                    if (a.NamedArguments.Any(n => n.Key == argument))
                        diagnostics.Add(DiagnosticDescriptors.ConflictingProjections, Bindings.Where(a, argument), type.Name,
                            argument + " needs QueryNorm and KeyNorm");
                return null;
            }
            if (queryName is null || keyName is null)
            {
                diagnostics.Add(DiagnosticDescriptors.ConflictingProjections, Bindings.Where(a, queryName is null ? "KeyNorm" : "QueryNorm"), type.Name,
                    "QueryNorm and KeyNorm are declared together (per-head norms on both queries and keys)");
                return null;
            }
            var query = Names.Member(queryName, Bindings.Where(a, "QueryNorm"), diagnostics);
            var key = Names.Member(keyName, Bindings.Where(a, "KeyNorm"), diagnostics);
            var projectionNames = Components(AttributeNames.Projection).Select(p => p.ConstructorArguments.FirstOrDefault().Value as string).ToList();
            foreach (var (name, argument) in new[] { (queryName, "QueryNorm"), (keyName, "KeyNorm") })
                if (projectionNames.Contains(name) || (argument == "KeyNorm" && name == queryName))
                    diagnostics.Add(DiagnosticDescriptors.DuplicateName, Bindings.Where(a, argument), type.Name, name);
            var eps = bindings.Optional(a, "HeadNormEps", BindingKind.Real, "1e-6");
            var kind = a.NamedArguments.Any(n => n.Key == "HeadNormKind") ? NamedEnum(a, "HeadNormKind", NormKinds, "NormKind") : "RmsNorm";
            if (kind == "LayerNorm")
                diagnostics.Add(DiagnosticDescriptors.ConflictingProjections, Bindings.Where(a, "HeadNormKind"), type.Name,
                    "HeadNormKind is RmsNorm or GemmaRmsNorm (per-head norms have no bias)");
            return query is null || key is null || eps is null ? null : new HeadNormSpec(query, key, eps, kind);
        }

        private RelativeBiasSpec? ParseRelativeBias(AttributeData a)
        {
            var name = Bindings.Named(a, "RelativeBias");
            if (name is null) return null;
            var member = Names.Member(name, Bindings.Where(a, "RelativeBias"), diagnostics);
            var buckets = bindings.Required(a, "RelativeBuckets", BindingKind.Size, type.Name);
            var distance = bindings.Required(a, "RelativeMaxDistance", BindingKind.Size, type.Name);
            if (Components(AttributeNames.Projection).Any(p => p.ConstructorArguments.FirstOrDefault().Value as string == name))
                diagnostics.Add(DiagnosticDescriptors.DuplicateName, Bindings.Where(a, "RelativeBias"), type.Name, name);
            return member is null || buckets is null || distance is null ? null : new RelativeBiasSpec(member, buckets, distance);
        }

        private FeedForwardSpec? ParseFeedForward()
        {
            var a = kindAttribute;
            var dim = bindings.Required(a, "Dim", BindingKind.Size, type.Name);
            var inner = bindings.Required(a, "Inner", BindingKind.Size, type.Name);
            var activation = bindings.Required(a, "Activation", BindingKind.Activation, type.Name);
            var (projections, roles) = ParseProjections(FeedForwardRoles, "[FeedForward]", allowConditional: true);
            if (roles.Contains("GateUp"))
            {
                if (roles.Contains("Gate") || roles.Contains("Up"))
                    Conflict("a fused GateUp projection cannot be combined with separate Gate/Up projections");
                if (projections.Any(p => p.When is not null))
                    Conflict("When is not supported beside a fused GateUp projection");
            }
            else RequireRole(roles, "Up", "an Up projection (or one fused GateUp)");
            RequireRole(roles, "Down", "a Down projection");
            // A role may repeat when every declaration of it is conditional (T5's wi / wi_1); the generated
            // constructor checks at run time that exactly one is present.
            ForbidRepeat(roles.Where(r => !projections.Any(p => p.Role == r && p.When is not null)).ToList(), "Gate", "Up", "Down", "GateUp");
            var dropout = bindings.Dropout(a, "Dropout");
            if (dim is null || inner is null || activation is null || diagnostics.HasErrors) return null;
            return new FeedForwardSpec(dim, inner, activation, projections.ToEquatableArray(), dropout);
        }

        /// <summary>The valid projections, and the roles declared with an allowed role whatever else is wrong with
        /// them, so the form checks report only real omissions.</summary>
        private (List<ProjectionSpec> Projections, List<string> Roles) ParseProjections(string[] allowedRoles, string where, bool allowConditional)
        {
            var result = new List<ProjectionSpec>();
            var roles = new List<string>();
            var named = new List<(Member?, AttributeData)>();
            foreach (var attribute in Components(AttributeNames.Projection))
            {
                var member = NameArgument(attribute);
                named.Add((member, attribute));
                var role = EnumName(attribute.ConstructorArguments.ElementAtOrDefault(1).Value, Roles);
                if (role is null || !allowedRoles.Contains(role))
                {
                    diagnostics.Add(DiagnosticDescriptors.ConflictingProjections, Bindings.Where(attribute), type.Name,
                        $"role {role ?? "?"} does not belong in a {where} class (allowed: {string.Join(", ", allowedRoles)})");
                    continue;
                }
                roles.Add(role);
                var layout = NamedEnum(attribute, "Layout", Layouts, "WeightLayout");
                var bias = bindings.Optional(attribute, "Bias", BindingKind.Flag, "false");
                var when = bindings.Optional(attribute, "When", BindingKind.Flag);
                if (when is not null && !allowConditional)
                    diagnostics.Add(DiagnosticDescriptors.ConflictingProjections, Bindings.Where(attribute, "When"), type.Name,
                        "When is only supported on [FeedForward] projections");
                var interleaved = NamedEnum(attribute, "QkvLayout", QkvLayouts, "QkvLayout") == "Interleaved";
                if (interleaved && role != "Qkv")
                    diagnostics.Add(DiagnosticDescriptors.ConflictingProjections, Bindings.Where(attribute, "QkvLayout"), type.Name,
                        $"QkvLayout orders a fused Qkv projection's output; {member?.Name ?? "this projection"} is {role}");
                if (member is not null && bias is not null) result.Add(new ProjectionSpec(member, role, layout, bias, when, interleaved));
            }
            CheckUnique(named);
            return (result, roles);
        }

        private void CheckAttentionForm(List<string> roles)
        {
            bool Has(string role) => roles.Contains(role);
            ForbidRepeat(roles, AttentionRoles);
            RequireRole(roles, "Output", "an Output projection");
            if (Has("Qkv"))
            {
                if (Has("Query") || Has("Key") || Has("Value") || Has("KeyValue"))
                    Conflict("a fused Qkv projection cannot be combined with separate Query/Key/Value/KeyValue projections");
                return;
            }
            if (!Has("Query"))
            {
                Conflict(kind == ModuleKind.CrossAttention
                    ? "declare Query with Key and Value (or with KeyValue)"
                    : "declare either one Qkv projection, or Query with Key and Value (or with KeyValue)");
                return;
            }
            if (Has("KeyValue") && (Has("Key") || Has("Value")))
                Conflict("a fused KeyValue projection cannot be combined with separate Key/Value projections");
            else if (!Has("KeyValue") && !(Has("Key") && Has("Value")))
                Conflict("Query needs both Key and Value projections (or one KeyValue)");
        }

        private void RequireRole(List<string> roles, string role, string what)
        {
            if (!roles.Contains(role))
                diagnostics.Add(DiagnosticDescriptors.MissingComponent, type.Locations.FirstOrDefault(), type.Name, what);
        }

        private void ForbidRepeat(List<string> declared, params string[] roles)
        {
            foreach (var role in roles.Where(r => declared.Count(d => d == r) > 1))
                Conflict($"the {role} role is declared more than once");
        }

        private void Conflict(string message) =>
            diagnostics.Add(DiagnosticDescriptors.ConflictingProjections, type.Locations.FirstOrDefault(), type.Name, message);

        private static string? EnumName(object? value, string[] names) =>
            value is int i && i >= 0 && i < names.Length ? names[i] : null;

        /// <summary>A named enum argument (the first value when absent); a cast to a value the enum does not have,
        /// such as <c>(QkvLayout)7</c>, is PEFT007 instead of the default.</summary>
        private string NamedEnum(AttributeData attribute, string argument, string[] names, string enumName) =>
            CheckedEnum(Bindings.NamedValue<object?>(attribute, argument, 0), Bindings.Where(attribute, argument), argument, names, enumName);

        /// <summary>An enum argument's name; a value outside the enum is PEFT007 at <paramref name="where"/>.</summary>
        private string CheckedEnum(object? value, Location? where, string argument, string[] names, string enumName)
        {
            if (EnumName(value, names) is { } name) return name;
            diagnostics.Add(DiagnosticDescriptors.BindingType, where, argument, value?.ToString() ?? "null",
                $"not a value of {enumName} ({string.Join(", ", names)})");
            return names[0];
        }
    }
}
