using System.Collections.Generic;
using System.Linq;
using Microsoft.CodeAnalysis;
using PeftDsl.Generators.Diagnostics;
using PeftDsl.Generators.Model;

namespace PeftDsl.Generators.Parsing
{
    internal sealed partial class ModuleParser
    {
        private StackSpec? ParseStack()
        {
            var dim = bindings.Required(kindAttribute, "Dim", BindingKind.Size, type.Name);
            var embeddingDropout = bindings.Dropout(kindAttribute, "EmbeddingDropout");
            var named = new List<(Member?, AttributeData)>();

            var tokens = Single(AttributeNames.TokenEmbedding, required: true);
            Member? tokenMember = null;
            Binding? vocab = null;
            var shared = false;
            var virtualPrompts = true;
            var embeddingScale = "None";
            if (tokens is not null)
            {
                tokenMember = NameArgument(tokens);
                named.Add((tokenMember, tokens));
                shared = Bindings.NamedValue(tokens, "Shared", false);
                virtualPrompts = Bindings.NamedValue(tokens, "VirtualPrompts", true);
                if (!shared) vocab = bindings.Required(tokens, "Vocab", BindingKind.Size, type.Name);
                embeddingScale = NamedEnum(tokens, "Scale", EmbeddingScales, "EmbeddingScale");
                if (shared && embeddingScale != "None")
                    diagnostics.Add(DiagnosticDescriptors.ConflictingProjections, Bindings.Where(tokens, "Scale"), type.Name,
                        "Scale is not supported with Shared: the root's shared embedding is not this stack's to scale");
            }

            var positions = Single(AttributeNames.PositionEmbedding, required: false);
            Member? positionMember = null;
            Binding? maxPositions = null;
            if (positions is not null)
            {
                positionMember = NameArgument(positions);
                named.Add((positionMember, positions));
                maxPositions = bindings.Required(positions, "MaxPositions", BindingKind.Size, type.Name);
            }

            var rotaryAttribute = Single(AttributeNames.RotaryEmbedding, required: false);
            RotarySpec? rotary = null;
            if (rotaryAttribute is not null)
            {
                var headDim = bindings.Required(rotaryAttribute, "HeadDim", BindingKind.Size, type.Name);
                var theta = bindings.Optional(rotaryAttribute, "Theta", BindingKind.Real, "10000");
                var ropeType = bindings.Optional(rotaryAttribute, "RopeType", BindingKind.RopeType, "default");
                var fraction = bindings.Optional(rotaryAttribute, "Fraction", BindingKind.Real, "1");
                if (fraction?.Literal is { } literal && literal > 0 && literal < 1)
                    diagnostics.Add(DiagnosticDescriptors.LiteralComputation, Bindings.Where(rotaryAttribute, "Fraction"), "Fraction", fraction.Display,
                        "partial rotary", "partial_rotary_factor");
                if (fraction?.Literal is { } f && !(f > 0 && f <= 1))
                    diagnostics.Add(DiagnosticDescriptors.BindingType, Bindings.Where(rotaryAttribute, "Fraction"), "Fraction", fraction.Display,
                        "the rotated share of a head must be in (0, 1]");
                // The scaled rope types' parameters, each optional: which ones a type needs is the runtime's check (the
                // type is usually a config value), except for a literal llama3, whose four come together.
                var scaling = new List<ScalingBinding>();
                foreach (var (argument, property) in ScalingArguments)
                {
                    if (Bindings.Named(rotaryAttribute, argument) is null) continue;
                    var kind = argument is "ShortFactor" or "LongFactor" ? BindingKind.Factors : BindingKind.Real;
                    if (bindings.Optional(rotaryAttribute, argument, kind) is { } bound) scaling.Add(new ScalingBinding(property, bound));
                }
                var llama3Names = new[] { "ScalingFactor", "LowFreqFactor", "HighFreqFactor", "OriginalMaxPositions" };
                var given = llama3Names.Where(n => Bindings.Named(rotaryAttribute, n) is not null).ToList();
                if (ropeType?.Display == "llama3" && given.Count == 0)
                    diagnostics.Add(DiagnosticDescriptors.MissingComponent, Bindings.Where(rotaryAttribute, "RopeType"), type.Name,
                        "ScalingFactor, LowFreqFactor, HighFreqFactor and OriginalMaxPositions bindings for RopeType \"llama3\"");
                else if (ropeType?.Display == "llama3" && given.Count < llama3Names.Length)
                    diagnostics.Add(DiagnosticDescriptors.MissingComponent, Bindings.Where(rotaryAttribute, given[0]), type.Name,
                        "all four llama3 scaling bindings (" + string.Join(", ", llama3Names.Except(given)) + " missing)");
                if (ropeType?.Display == "linear" && Bindings.Named(rotaryAttribute, "ScalingFactor") is null)
                    diagnostics.Add(DiagnosticDescriptors.MissingComponent, Bindings.Where(rotaryAttribute, "RopeType"), type.Name,
                        "a ScalingFactor binding for RopeType \"linear\"");
                if (ropeType?.Display is "longrope" or "su" && Bindings.Named(rotaryAttribute, "ShortFactor") is null && Bindings.Named(rotaryAttribute, "LongFactor") is null)
                    diagnostics.Add(DiagnosticDescriptors.MissingComponent, Bindings.Where(rotaryAttribute, "RopeType"), type.Name,
                        "ShortFactor, LongFactor and OriginalMaxPositions bindings for RopeType \"longrope\"");
                if ((Bindings.Named(rotaryAttribute, "ShortFactor") is null) != (Bindings.Named(rotaryAttribute, "LongFactor") is null))
                    diagnostics.Add(DiagnosticDescriptors.MissingComponent, Bindings.Where(rotaryAttribute, Bindings.Named(rotaryAttribute, "ShortFactor") is null ? "LongFactor" : "ShortFactor"),
                        type.Name, "ShortFactor and LongFactor together (longrope)");
                var localTheta = bindings.Optional(rotaryAttribute, "LocalTheta", BindingKind.Real);
                if (headDim is not null && theta is not null && ropeType is not null && fraction is not null)
                    rotary = new RotarySpec(headDim, theta, ropeType, fraction, scaling.Count == 0 ? null : scaling.ToEquatableArray(),
                        bindings.Optional(rotaryAttribute, "MaxPositions", BindingKind.Size), localTheta);
                if (headDim?.Literal is { } hd && (fraction?.Literal ?? 1.0) is var share && share > 0 && share <= 1)
                {
                    var rotated = (long)(hd * share);
                    if (rotated <= 0 || rotated % 2 != 0)
                        diagnostics.Add(DiagnosticDescriptors.SizesDoNotDivide, Bindings.Where(rotaryAttribute, "HeadDim"), type.Name,
                            $"the rotated size {rotated} (HeadDim {hd} × Fraction {share}) must be a positive even number");
                }
            }

            var blocks = Single(AttributeNames.Blocks, required: true);
            Member? blocksMember = null;
            TypeRef? blockType = null;
            Binding? count = null;
            if (blocks is not null)
            {
                blocksMember = NameArgument(blocks);
                named.Add((blocksMember, blocks));
                blockType = ModuleArgument(blocks, 1, "[Blocks]", ModuleKind.TransformerBlock);
                count = bindings.Required(blocks, "Count", BindingKind.Size, type.Name);
                if (blockType is not null && rotaryAttribute is null) CheckNoRotaryAttention(TypeArgument(blocks, 1)!, blocks);
                if (blockType is not null && rotaryAttribute is not null) CheckRotaryHeadSize(TypeArgument(blocks, 1)!, rotaryAttribute);
                if (blockType is not null && rotaryAttribute is not null && Bindings.Named(rotaryAttribute, "LocalTheta") is not null)
                    CheckLocalTablesUsed(TypeArgument(blocks, 1)!, rotaryAttribute);
            }

            var finalNorm = Single(AttributeNames.FinalNorm, required: true);
            Member? normMember = null;
            string normKind = "LayerNorm";
            Binding? eps = null, finalDropout = null;
            if (finalNorm is not null)
            {
                normMember = NameArgument(finalNorm);
                named.Add((normMember, finalNorm));
                normKind = CheckedEnum(finalNorm.ConstructorArguments.ElementAtOrDefault(1).Value, Bindings.Where(finalNorm), "kind", NormKinds, "NormKind");
                eps = bindings.Optional(finalNorm, "Eps", BindingKind.Real, "1e-5");
                finalDropout = bindings.Dropout(finalNorm, "Dropout");
            }
            CheckUnique(named);
            if (diagnostics.HasErrors) return null;
            return new StackSpec(dim!, tokenMember!, vocab, shared, virtualPrompts, positionMember, maxPositions, rotary,
                blocksMember!, blockType!, count!, normMember!, normKind, eps!, embeddingDropout, finalDropout, embeddingScale);
        }

        // Values of PeftDsl.Dsl.EmbeddingScale, in declaration order.
        private static readonly string[] EmbeddingScales = { "None", "Tokens", "Inputs" };

        /// <summary>[RotaryEmbedding]'s scaling arguments and the PeftDsl.Modules.RopeScaling properties they set.</summary>
        private static readonly (string Argument, string Property)[] ScalingArguments =
        {
            ("ScalingFactor", "Factor"), ("LowFreqFactor", "LowFreqFactor"), ("HighFreqFactor", "HighFreqFactor"),
            ("OriginalMaxPositions", "OriginalMaxPositions"), ("ShortFactor", "ShortFactor"), ("LongFactor", "LongFactor"),
            ("AttentionFactor", "AttentionFactor"),
        };

        /// <summary>Literal sizes that cannot fit are compile-time errors: the rotary head size must be the head size of
        /// every rotary attention whose head size is literal (HeadDim, or Dim / Heads).</summary>
        /// <summary>LocalTheta builds tables only sliding-window layers read: without a rotary attention that declares
        /// LayerTypes nothing would read them, and the θ the declaration names would silently not apply.</summary>
        private void CheckLocalTablesUsed(INamedTypeSymbol block, AttributeData rotaryAttribute)
        {
            var used = AttributesOf(block, AttributeNames.Sublayer)
                .Select(s => TypeArgument(s, 1))
                .Select(m => m is null ? null : AttributesOf(m, AttributeNames.Kinds[ModuleKind.SelfAttention]).FirstOrDefault())
                .Any(a => a is not null && Bindings.NamedValue(a, "Rotary", false) && Bindings.Named(a, "LayerTypes") is not null);
            if (!used)
                diagnostics.Add(DiagnosticDescriptors.ConflictingProjections, Bindings.Where(rotaryAttribute, "LocalTheta"), type.Name,
                    "LocalTheta gives sliding-window layers their own tables, but no rotary attention of the blocks declares LayerTypes");
        }

        private void CheckRotaryHeadSize(INamedTypeSymbol block, AttributeData rotaryAttribute)
        {
            if (LiteralNumber(rotaryAttribute, "HeadDim") is not { } rotary) return;
            foreach (var sublayer in AttributesOf(block, AttributeNames.Sublayer))
            {
                var module = TypeArgument(sublayer, 1);
                var attention = module is null ? null : AttributesOf(module, AttributeNames.Kinds[ModuleKind.SelfAttention]).FirstOrDefault();
                if (attention is null || !Bindings.NamedValue(attention, "Rotary", false)) continue;
                var head = LiteralNumber(attention, "HeadDim")
                    ?? (LiteralNumber(attention, "Dim") is { } d && LiteralNumber(attention, "Heads") is { } h && h > 0 ? d / h : null);
                if (head is { } size && size != rotary)
                    diagnostics.Add(DiagnosticDescriptors.SizesDoNotDivide, Bindings.Where(rotaryAttribute, "HeadDim"), type.Name,
                        $"the rotary HeadDim {rotary} is not the head size {size} of attention '{module!.Name}'");
            }
        }

        /// <summary>A binding argument written as a number (not a config member), or null.</summary>
        private static double? LiteralNumber(AttributeData attribute, string argument) =>
            Bindings.Named(attribute, argument) is { } text && double.TryParse(text, System.Globalization.NumberStyles.Float,
                System.Globalization.CultureInfo.InvariantCulture, out var value) ? value : null;

        /// <summary>A rotary attention layer needs tables the stack computes; catch the omission at compile time.</summary>
        private void CheckNoRotaryAttention(INamedTypeSymbol block, AttributeData blocksAttribute)
        {
            foreach (var sublayer in AttributesOf(block, AttributeNames.Sublayer))
            {
                var module = TypeArgument(sublayer, 1);
                var attention = module is null ? null : AttributesOf(module, AttributeNames.Kinds[ModuleKind.SelfAttention]).FirstOrDefault();
                if (attention is not null && Bindings.NamedValue(attention, "Rotary", false))
                    diagnostics.Add(DiagnosticDescriptors.RotaryMissing, Bindings.Where(blocksAttribute), type.Name, module!.Name);
            }
        }
    }
}
