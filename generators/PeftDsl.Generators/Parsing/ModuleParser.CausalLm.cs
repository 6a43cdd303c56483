using System;
using System.Collections.Generic;
using System.Linq;
using System.Text.RegularExpressions;
using Microsoft.CodeAnalysis;
using PeftDsl.Generators.Diagnostics;
using PeftDsl.Generators.Model;

namespace PeftDsl.Generators.Parsing
{
    internal sealed partial class ModuleParser
    {
        private CausalLmSpec? ParseCausalLm()
        {
            var modelType = Bindings.NamedValue(kindAttribute, "ModelType", "");
            var ignore = kindAttribute.NamedArguments.Where(p => p.Key == "IgnoreUnexpectedKeys")
                .SelectMany(p => Bindings.Strings(p.Value)).ToList();
            foreach (var pattern in ignore)
            {
                try { _ = new Regex(pattern); }
                catch (ArgumentException e)
                {
                    diagnostics.Add(DiagnosticDescriptors.BindingType, Bindings.Where(kindAttribute, "IgnoreUnexpectedKeys"),
                        "IgnoreUnexpectedKeys", pattern, "not a valid regular expression: " + e.Message);
                }
            }

            var body = Single(AttributeNames.Body, required: true);
            var head = Single(AttributeNames.LmHead, required: true);
            if (body is null || head is null) return null;
            var bodyMember = NameArgument(body);
            var bodyType = ModuleArgument(body, 1, "[Body]", ModuleKind.TransformerStack);
            var headMember = NameArgument(head);
            CheckUnique(new[] { (bodyMember, body), (headMember, head) });
            if (bodyMember is null || bodyType is null || headMember is null) return null;

            var bodySymbol = TypeArgument(body, 1)!;
            var tokenName = AttributesOf(bodySymbol, AttributeNames.TokenEmbedding).FirstOrDefault()?
                .ConstructorArguments.FirstOrDefault().Value as string;
            if (tokenName is null) return null; // the stack's own parse reports the missing embedding
            var tiedTo = Bindings.Named(head, "TiedTo");
            var expectedTie = bodyMember.Name + "." + tokenName;
            if (tiedTo is not null && tiedTo != expectedTie)
                diagnostics.Add(DiagnosticDescriptors.UnresolvedTie, Bindings.Where(head, "TiedTo"), tiedTo, expectedTie);
            if (tiedTo is null && Bindings.Named(head, "Tie") is not null)
                diagnostics.Add(DiagnosticDescriptors.MissingComponent, Bindings.Where(head, "Tie"), type.Name,
                    "TiedTo = \"" + expectedTie + "\" on [LmHead] when Tie is set");
            var tie = bindings.Optional(head, "Tie", BindingKind.Flag, tiedTo is null ? "false" : "true");
            if (tie is null || diagnostics.HasErrors) return null;
            return new CausalLmSpec(modelType, ignore.ToEquatableArray(), bodyMember, bodyType, headMember, tie,
                Names.Identifier(tokenName.Replace('.', '_')), Targets(bodySymbol).ToEquatableArray());
        }

        /// <summary>
        /// The peft <c>target_modules</c> names the model offers, as typed constants: each projection's own name when
        /// it is unique in the model (<c>c_attn</c>), else qualified by its sublayer (<c>attn.c_proj</c>, <c>mlp.c_proj</c>).
        /// </summary>
        private static IEnumerable<TargetSpec> Targets(INamedTypeSymbol body)
        {
            var paths = new List<(string Sublayer, string Projection)>();
            foreach (var blocks in AttributesOf(body, AttributeNames.Blocks))
            {
                var block = TypeArgument(blocks, 1);
                if (block is null) continue;
                foreach (var sublayer in AttributesOf(block, AttributeNames.Sublayer))
                {
                    var module = TypeArgument(sublayer, 1);
                    if (module is null || sublayer.ConstructorArguments.FirstOrDefault().Value is not string sublayerName) continue;
                    foreach (var projection in AttributesOf(module, AttributeNames.Projection))
                        if (projection.ConstructorArguments.FirstOrDefault().Value is string p)
                            paths.Add((sublayerName, p));
                }
            }
            return paths.Distinct()
                .Select(p => paths.Count(q => q.Projection == p.Projection) > 1 ? p.Sublayer + "." + p.Projection : p.Projection)
                .Distinct()
                .Select(value => new TargetSpec(Names.Identifier(value.Replace('.', '_')), value));
        }
    }
}
