using System;
using System.Collections.Generic;
using System.Linq;
using System.Text.RegularExpressions;
using Microsoft.CodeAnalysis;
using PeftDsl.Generators.Diagnostics;
using PeftDsl.Generators.Model;

namespace PeftDsl.Generators.Parsing
{
    /// <summary>The two root kinds: [CausalLM] and [Seq2SeqLM].</summary>
    internal sealed partial class ModuleParser
    {
        private CausalLmSpec? ParseCausalLm()
        {
            var (modelType, alsoReads, ignore) = ParseRootArguments();
            var body = Single(AttributeNames.Body, required: true);
            var headAttribute = Single(AttributeNames.LmHead, required: true);
            if (body is null || headAttribute is null) return null;
            var bodyMember = NameArgument(body);
            var bodyType = ModuleArgument(body, 1, "[Body]", ModuleKind.TransformerStack);
            var headMember = NameArgument(headAttribute);
            CheckUnique(new[] { (bodyMember, body), (headMember, headAttribute) });
            if (bodyMember is null || bodyType is null || headMember is null) return null;

            var bodySymbol = TypeArgument(body, 1)!;
            var tokens = AttributesOf(bodySymbol, AttributeNames.TokenEmbedding).FirstOrDefault();
            if (tokens?.ConstructorArguments.FirstOrDefault().Value is not string tokenName) return null; // reported by the stack
            if (Bindings.NamedValue(tokens, "Shared", false))
                diagnostics.Add(DiagnosticDescriptors.SharedEmbeddingMissing, Bindings.Where(body), bodySymbol.Name, type.Name);
            var head = ParseHead(headAttribute, headMember, bodyMember.Name + "." + tokenName,
                "this." + bodyMember.Field + "." + Names.Identifier(tokenName.Replace('.', '_')));
            if (head is null || diagnostics.HasErrors) return null;
            return new CausalLmSpec(modelType, alsoReads.ToEquatableArray(), ignore.ToEquatableArray(), bodyMember, bodyType, head, Targets(new[] { bodySymbol }).ToEquatableArray());
        }

        private Seq2SeqSpec? ParseSeq2Seq()
        {
            var (modelType, alsoReads, ignore) = ParseRootArguments();
            var sharedAttribute = Single(AttributeNames.SharedEmbedding, required: false);
            var encoderAttribute = Single(AttributeNames.Encoder, required: true);
            var decoderAttribute = Single(AttributeNames.Decoder, required: true);
            var headAttribute = Single(AttributeNames.LmHead, required: true);
            if (sharedAttribute is null)
            {
                diagnostics.Add(DiagnosticDescriptors.MissingComponent, type.Locations.FirstOrDefault(), type.Name, "[SharedEmbedding]");
                return null;
            }
            if (encoderAttribute is null || decoderAttribute is null || headAttribute is null) return null;
            var shared = NameArgument(sharedAttribute);
            var vocab = bindings.Required(sharedAttribute, "Vocab", BindingKind.Size, type.Name);
            var dim = bindings.Required(sharedAttribute, "Dim", BindingKind.Size, type.Name);
            var encoder = StackArgument(encoderAttribute, "[Encoder]");
            var decoder = StackArgument(decoderAttribute, "[Decoder]");
            var headMember = NameArgument(headAttribute);
            CheckUnique(new[] { (shared, sharedAttribute), (encoder?.Member, encoderAttribute), (decoder?.Member, decoderAttribute), (headMember, headAttribute) });
            if (shared is null || vocab is null || dim is null || encoder is null || decoder is null || headMember is null) return null;
            var head = ParseHead(headAttribute, headMember, shared.Name, "this." + shared.Field);
            var start = bindings.Optional(kindAttribute, "DecoderStartToken", BindingKind.TokenId, "0");
            if (head is null || start is null || diagnostics.HasErrors) return null;
            return new Seq2SeqSpec(modelType, alsoReads.ToEquatableArray(), start, ignore.ToEquatableArray(), shared, vocab, dim, encoder, decoder, head,
                Targets(new[] { TypeArgument(encoderAttribute, 1)!, TypeArgument(decoderAttribute, 1)! }).ToEquatableArray());
        }

        private StackRef? StackArgument(AttributeData attribute, string what)
        {
            var member = NameArgument(attribute);
            var stack = ModuleArgument(attribute, 1, what, ModuleKind.TransformerStack);
            if (member is null || stack is null) return null;
            var tokens = AttributesOf(TypeArgument(attribute, 1)!, AttributeNames.TokenEmbedding).FirstOrDefault();
            return new StackRef(member, stack, tokens is not null && Bindings.NamedValue(tokens, "Shared", false));
        }

        private (string ModelType, List<string> AlsoReads, List<string> Ignore) ParseRootArguments()
        {
            var modelType = Bindings.NamedValue(kindAttribute, "ModelType", "");
            var alsoReads = kindAttribute.NamedArguments.Where(p => p.Key == "AlsoReads")
                .SelectMany(p => Bindings.Strings(p.Value)).ToList();
            if (alsoReads.Count > 0 && modelType.Length == 0)
                diagnostics.Add(DiagnosticDescriptors.MissingComponent, Bindings.Where(kindAttribute, "AlsoReads"), type.Name,
                    "ModelType = \"…\" when AlsoReads is set");
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
            return (modelType, alsoReads, ignore);
        }

        /// <param name="tieTarget">The checkpoint path TiedTo must name.</param>
        /// <param name="tiedEmbedding">The C# expression of that embedding.</param>
        private HeadSpec? ParseHead(AttributeData head, Member member, string tieTarget, string tiedEmbedding)
        {
            var tiedTo = Bindings.Named(head, "TiedTo");
            if (tiedTo is not null && tiedTo != tieTarget)
                diagnostics.Add(DiagnosticDescriptors.UnresolvedTie, Bindings.Where(head, "TiedTo"), tiedTo, tieTarget);
            if (tiedTo is null && Bindings.Named(head, "Tie") is not null)
                diagnostics.Add(DiagnosticDescriptors.MissingComponent, Bindings.Where(head, "Tie"), type.Name,
                    "TiedTo = \"" + tieTarget + "\" on [LmHead] when Tie is set");
            var tie = bindings.Optional(head, "Tie", BindingKind.Flag, tiedTo is null ? "false" : "true");
            var scale = bindings.Optional(head, "Scale", BindingKind.Flag, "false");
            var softcap = bindings.Optional(head, "Softcap", BindingKind.Softcap);
            if (softcap?.Literal is > 0)
                diagnostics.Add(DiagnosticDescriptors.LiteralComputation, Bindings.Where(head, "Softcap"), "Softcap", softcap.Display,
                    "soft-capped logits", "final_logit_softcapping");
            if (softcap is null && Bindings.Named(head, "Softcap") is not null) return null;
            return tie is null || scale is null ? null
                : new HeadSpec(member, tie, scale, tiedEmbedding, softcap is { Literal: 0.0 } ? null : softcap);
        }

        /// <summary>
        /// The peft <c>target_modules</c> names the model offers, as typed constants: each projection's own name when
        /// it is unique in the model (<c>c_attn</c>), else qualified by the last segment of its sublayer
        /// (<c>attn.c_proj</c>, <c>EncDecAttention.q</c>).
        /// </summary>
        private static IEnumerable<TargetSpec> Targets(IEnumerable<INamedTypeSymbol> stacks)
        {
            var paths = new List<(string Sublayer, string Projection)>();
            foreach (var blocks in stacks.SelectMany(s => AttributesOf(s, AttributeNames.Blocks)))
            {
                var block = TypeArgument(blocks, 1);
                if (block is null) continue;
                foreach (var sublayer in AttributesOf(block, AttributeNames.Sublayer))
                {
                    var module = TypeArgument(sublayer, 1);
                    if (module is null || sublayer.ConstructorArguments.FirstOrDefault().Value is not string sublayerName) continue;
                    var qualifier = sublayerName.Substring(sublayerName.LastIndexOf('.') + 1);
                    foreach (var projection in AttributesOf(module, AttributeNames.Projection))
                        if (projection.ConstructorArguments.FirstOrDefault().Value is string p)
                            paths.Add((qualifier, p));
                }
            }
            paths = paths.Distinct().ToList();
            // Names must be valid checkpoint names (a bad one is its class's own error) and give distinct constants:
            // c.fc and c_fc would both be c_fc, so the second becomes c_fc_2.
            var taken = new HashSet<string>();
            foreach (var value in paths
                .Where(p => Names.IsCheckpointName(p.Projection) && Names.IsCheckpointName(p.Sublayer))
                .Select(p => paths.Count(q => q.Projection == p.Projection) > 1 ? p.Sublayer + "." + p.Projection : p.Projection)
                .Distinct())
            {
                var identifier = value.Replace('.', '_');
                for (var n = 2; !taken.Add(identifier); n++) identifier = value.Replace('.', '_') + "_" + n;
                yield return new TargetSpec(Names.Identifier(identifier), value);
            }
        }
    }
}
