using System.Collections.Generic;
using System.Linq;
using System.Threading;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using PeftDsl.Generators.Diagnostics;
using PeftDsl.Generators.Model;

namespace PeftDsl.Generators.Parsing
{
    /// <summary>Attributes of one DSL class → a <see cref="ModuleSpec"/>, or diagnostics. Never throws on bad
    /// input: every problem becomes a diagnostic at the attribute that caused it.</summary>
    internal sealed partial class ModuleParser
    {
        private readonly INamedTypeSymbol type;
        private readonly ModuleKind kind;
        private readonly DiagnosticBag diagnostics = new();
        private readonly AttributeData kindAttribute;
        private INamedTypeSymbol config = null!;
        private Bindings bindings = null!;
        // A referenced class (or the config) that the generator cannot complete reports its own error; this class
        // then gets only a skeleton, so its generated code never calls members that do not exist.
        private bool dependencyBroken;

        private ModuleParser(INamedTypeSymbol type, ModuleKind kind, AttributeData kindAttribute)
        {
            this.type = type;
            this.kind = kind;
            this.kindAttribute = kindAttribute;
        }

        public static ParseResult<ModuleSpec> Parse(GeneratorAttributeSyntaxContext context, ModuleKind kind, CancellationToken cancellationToken)
        {
            var type = (INamedTypeSymbol)context.TargetSymbol;
            var parser = new ModuleParser(type, kind, context.Attributes[0]);
            var spec = parser.Run(cancellationToken);
            return parser.diagnostics.HasErrors || parser.dependencyBroken
                ? new ParseResult<ModuleSpec>(null, parser.diagnostics.ToArray(), parser.Skeleton())
                : new ParseResult<ModuleSpec>(spec, parser.diagnostics.ToArray());
        }

        /// <summary>A skeleton for a class with errors, when C# lets us complete it (<see cref="Completable"/>) and it has
        /// one kind and a readable config.</summary>
        private SkeletonSpec? Skeleton()
        {
            if (!Completable(type) || config is null || KindsOf(type).Count != 1) return null;
            var tokens = Components(AttributeNames.TokenEmbedding).FirstOrDefault();
            var tokenName = tokens?.ConstructorArguments.FirstOrDefault().Value as string;
            var tokenField = kind == ModuleKind.TransformerStack && tokenName is not null && Names.IsCheckpointName(tokenName)
                ? Names.Identifier(tokenName.Replace('.', '_')) : null;
            var (fields, targets) = RootSkeletonParts();
            return new SkeletonSpec(type.ContainingNamespace.IsGlobalNamespace ? null : type.ContainingNamespace.ToDisplayString(),
                type.Name, kind, Names.FullName(config), tokens is not null && Bindings.NamedValue(tokens, "Shared", false), tokenField,
                fields.ToEquatableArray(), targets.ToEquatableArray());
        }

        /// <summary>A class's component fields ("Type field") and, for a root, its typed target names, read from its
        /// attributes whatever else is wrong, so the user's code that names them compiles while the PEFT error is fixed.
        /// A stack's token embedding is the skeleton's own field (<see cref="SkeletonSpec.TokenField"/>).</summary>
        private (List<string> Fields, List<TargetSpec> Targets) RootSkeletonParts()
        {
            var fields = new List<string>();
            var stacks = new List<INamedTypeSymbol>();
            var taken = new HashSet<string>();
            void Field(AttributeData? attribute, string? typeName, string? name = null)
            {
                name ??= attribute?.ConstructorArguments.FirstOrDefault().Value as string;
                if (name is null || !Names.IsCheckpointName(name) || typeName is null) return;
                var field = Names.Identifier(name.Replace('.', '_'));
                if (field != type.Name && taken.Add(field)) fields.Add(typeName + " " + field);
            }
            string? Module(AttributeData attribute, int index) =>
                TypeArgument(attribute, index) is { } t && !t.IsUnboundGenericType && Completable(t) ? Names.FullName(t) : null;
            string Norm(object? value) => "global::PeftDsl.Modules." + (value is int i && i >= 0 && i < NormKinds.Length ? NormKinds[i] : NormKinds[0]);
            switch (kind)
            {
                case ModuleKind.CausalLM or ModuleKind.Seq2SeqLM:
                    foreach (var component in new[] { AttributeNames.Body, AttributeNames.Encoder, AttributeNames.Decoder })
                    {
                        var attribute = Components(component).FirstOrDefault();
                        var stack = attribute is null ? null : TypeArgument(attribute, 1);
                        if (stack is null || stack.IsUnboundGenericType || !Completable(stack)) continue;
                        stacks.Add(stack);
                        Field(attribute, Names.FullName(stack));
                    }
                    Field(Components(AttributeNames.SharedEmbedding).FirstOrDefault(), "global::PeftDsl.Modules.Embedding");
                    Field(Components(AttributeNames.LmHead).FirstOrDefault(), "global::PeftDsl.Modules.LmHead");
                    break;
                case ModuleKind.TransformerStack:
                    Field(Components(AttributeNames.PositionEmbedding).FirstOrDefault(), "global::PeftDsl.Modules.Embedding");
                    if (Components(AttributeNames.Blocks).FirstOrDefault() is { } blocks && Module(blocks, 1) is { } block)
                        Field(blocks, $"global::TorchSharp.Modules.ModuleList<{block}>");
                    if (Components(AttributeNames.FinalNorm).FirstOrDefault() is { } final)
                        Field(final, Norm(final.ConstructorArguments.ElementAtOrDefault(1).Value));
                    break;
                case ModuleKind.TransformerBlock:
                    foreach (var sublayer in Components(AttributeNames.Sublayer))
                    {
                        Field(sublayer, Norm(kindAttribute.NamedArguments.FirstOrDefault(a => a.Key == "Norm").Value.Value), Bindings.Named(sublayer, "Norm"));
                        Field(sublayer, Module(sublayer, 1));
                    }
                    break;
                default:
                    foreach (var projection in Components(AttributeNames.Projection)) Field(projection, "global::PeftDsl.Modules.PeftLinear");
                    if (Bindings.Named(kindAttribute, "RelativeBias") is { } bias) Field(null, "global::PeftDsl.Modules.RelativePositionBias?", bias);
                    break;
            }
            return (fields, kind is ModuleKind.CausalLM or ModuleKind.Seq2SeqLM ? Targets(stacks).ToList() : new List<TargetSpec>());
        }

        private ModuleSpec? Run(CancellationToken cancellationToken)
        {
            var kinds = KindsOf(type);
            if (kinds.Count > 1)
            {
                // Every kind's pipeline sees the class; only the first reports, so the error appears once.
                if (kinds[0] == kind)
                    diagnostics.Add(DiagnosticDescriptors.ConflictingKinds, type.Locations.FirstOrDefault(), type.Name,
                        string.Join(", ", kinds.Select(k => "[" + k + "]")));
                return null;
            }
            CheckDeclaration();
            if (!ReadConfig()) return null;
            cancellationToken.ThrowIfCancellationRequested();
            CheckComponentsBelong();
            var spec = new ModuleSpec(
                type.ContainingNamespace.IsGlobalNamespace ? null : type.ContainingNamespace.ToDisplayString(),
                type.Name, kind, Names.FullName(config));
            return kind switch
            {
                ModuleKind.CausalLM => ParseCausalLm() is { } p ? spec with { CausalLm = p } : null,
                ModuleKind.Seq2SeqLM => ParseSeq2Seq() is { } p ? spec with { Seq2Seq = p } : null,
                ModuleKind.TransformerStack => ParseStack() is { } p ? spec with { Stack = p } : null,
                ModuleKind.TransformerBlock => ParseBlock() is { } p ? spec with { Block = p } : null,
                ModuleKind.SelfAttention => ParseAttention(cross: false) is { } p ? spec with { Attention = p } : null,
                ModuleKind.CrossAttention => ParseAttention(cross: true) is { } p ? spec with { Attention = p } : null,
                _ => ParseFeedForward() is { } p ? spec with { FeedForward = p } : null,
            };
        }

        private void CheckDeclaration()
        {
            var location = type.Locations.FirstOrDefault();
            var partial = type.DeclaringSyntaxReferences.All(r =>
                r.GetSyntax() is TypeDeclarationSyntax t && t.Modifiers.Any(SyntaxKind.PartialKeyword));
            if (!partial) diagnostics.Add(DiagnosticDescriptors.NotPartial, location, type.Name);
            if (type.ContainingType is not null) diagnostics.Add(DiagnosticDescriptors.NestedType, location, type.Name);
            if (type.BaseType is { SpecialType: not SpecialType.System_Object } baseType)
                diagnostics.Add(DiagnosticDescriptors.BaseClassConflict, location, type.Name, baseType.ToDisplayString());
            if (type.IsRecord) diagnostics.Add(DiagnosticDescriptors.NotAClass, location, type.Name);
            if (type.IsStatic || type.IsAbstract)
                diagnostics.Add(DiagnosticDescriptors.StaticOrAbstract, location, type.Name, type.IsStatic ? "static" : "abstract");
            if (type.TypeParameters.Length > 0) diagnostics.Add(DiagnosticDescriptors.GenericType, location, type.Name);
        }

        private bool ReadConfig()
        {
            var arg = kindAttribute.ConstructorArguments.FirstOrDefault();
            if (arg.Value is INamedTypeSymbol c && c.GetAttributes().Any(a => a.AttributeClass?.ToDisplayString() == AttributeNames.ModelConfig))
            {
                // A config that is not a partial record gets no FromJson (PEFT001/PEFT011 on it).
                if (!c.IsRecord || !c.DeclaringSyntaxReferences.All(r => r.GetSyntax() is TypeDeclarationSyntax t && t.Modifiers.Any(SyntaxKind.PartialKeyword)))
                    dependencyBroken = true;
                config = c;
                bindings = new Bindings(config, diagnostics);
                return true;
            }
            diagnostics.Add(DiagnosticDescriptors.WrongModuleKind, Bindings.Where(kindAttribute), "The config type", "ModelConfig",
                (arg.Value as ITypeSymbol)?.Name ?? "null", "not marked [ModelConfig]");
            return false;
        }

        private void CheckComponentsBelong()
        {
            var allowed = AttributeNames.Components[kind];
            foreach (var a in type.GetAttributes())
            {
                var name = a.AttributeClass?.ToDisplayString();
                if (name is not null && AttributeNames.AllComponents.Contains(name) && !allowed.Contains(name))
                    diagnostics.Add(DiagnosticDescriptors.ComponentNotAllowed, Bindings.Where(a), AttributeNames.Short(name), kind.ToString());
            }
        }

        private IEnumerable<AttributeData> Components(string metadataName) =>
            type.GetAttributes().Where(a => a.AttributeClass?.ToDisplayString() == metadataName);

        /// <summary>The single component of a kind, reporting PEFT003 if required and absent and PEFT005 if repeated.</summary>
        private AttributeData? Single(string metadataName, bool required)
        {
            var found = Components(metadataName).ToList();
            if (found.Count == 0 && required)
                diagnostics.Add(DiagnosticDescriptors.MissingComponent, type.Locations.FirstOrDefault(), type.Name,
                    "[" + AttributeNames.Short(metadataName) + "]");
            foreach (var extra in found.Skip(1))
                diagnostics.Add(DiagnosticDescriptors.DuplicateName, Bindings.Where(extra), type.Name, "[" + AttributeNames.Short(metadataName) + "]");
            return found.FirstOrDefault();
        }

        private Member? NameArgument(AttributeData attribute, int index = 0) =>
            Names.Member(attribute.ConstructorArguments.ElementAtOrDefault(index).Value as string, Bindings.Where(attribute), diagnostics);

        /// <summary>A typeof(...) argument that must name a DSL class of <paramref name="expected"/> kind with the same config.</summary>
        private TypeRef? ModuleArgument(AttributeData attribute, int index, string what, params ModuleKind[] expected)
        {
            var referenced = attribute.ConstructorArguments.ElementAtOrDefault(index).Value as INamedTypeSymbol;
            var location = Bindings.Where(attribute);
            if (referenced is null)
            {
                diagnostics.Add(DiagnosticDescriptors.WrongModuleKind, location, what, string.Join("] or [", expected), "null", "not a class");
                return null;
            }
            var kinds = KindsOf(referenced);
            if (kinds.Count != 1 || !expected.Contains(kinds[0]))
            {
                diagnostics.Add(DiagnosticDescriptors.WrongModuleKind, location, what, string.Join("] or [", expected), referenced.Name,
                    kinds.Count == 0 ? "not a DSL class" : "[" + string.Join("], [", kinds) + "]");
                return null;
            }
            if (!Completable(referenced)) dependencyBroken = true;
            var theirs = ConfigOf(referenced);
            if (theirs is not null && !SymbolEqualityComparer.Default.Equals(theirs, config))
            {
                diagnostics.Add(DiagnosticDescriptors.ConfigMismatch, location, type.Name, config.Name, referenced.Name, theirs.Name);
                return null;
            }
            return new TypeRef(Names.FullName(referenced), referenced.Name);
        }

        /// <summary>Whether the generator can complete a DSL class (its own errors aside): partial, top-level, a
        /// non-generic, non-static, non-abstract class with no base class of its own.</summary>
        private static bool Completable(INamedTypeSymbol t) =>
            t.DeclaringSyntaxReferences.Length > 0
            && t.DeclaringSyntaxReferences.All(r => r.GetSyntax() is ClassDeclarationSyntax c && c.Modifiers.Any(SyntaxKind.PartialKeyword))
            && !t.IsRecord && !t.IsStatic && !t.IsAbstract && t.ContainingType is null && !t.IsGenericType
            && t.BaseType is not { SpecialType: not SpecialType.System_Object };

        /// <summary>Reports PEFT005 for names declared twice in this class, and PEFT027 for names whose C# member
        /// collides with another component's (<c>c.fc</c> and <c>c_fc</c>) or with a member the generator declares.</summary>
        private void CheckUnique(IEnumerable<(Member? Member, AttributeData Attribute)> members)
        {
            var seen = new HashSet<string>();
            var fields = new Dictionary<string, string>();
            foreach (var (member, attribute) in members)
            {
                if (member is null) continue;
                if (!seen.Add(member.Name))
                {
                    diagnostics.Add(DiagnosticDescriptors.DuplicateName, Bindings.Where(attribute), type.Name, member.Name);
                    continue;
                }
                if (fields.TryGetValue(member.Field, out var other))
                    diagnostics.Add(DiagnosticDescriptors.NameCollision, Bindings.Where(attribute), type.Name, member.Name, member.Field,
                        $"'{other}' also becomes; rename one of them");
                else if (member.Field == type.Name || Reserved.Contains(member.Field) || ReservedFor(kind).Contains(member.Field))
                    diagnostics.Add(DiagnosticDescriptors.NameCollision, Bindings.Where(attribute), type.Name, member.Name, member.Field,
                        member.Field == type.Name ? "is the class's own name" : "the generated code declares; rename the component");
                else
                    fields[member.Field] = member.Name;
            }
        }

        /// <summary>Members every generated module declares.</summary>
        private static readonly HashSet<string> Reserved = new() { "forward", "DescribeCheckpoint", "Sites", "Broken" };

        /// <summary>Members the emitter for each kind declares (fields, properties, helpers).</summary>
        private static HashSet<string> ReservedFor(ModuleKind kind) => kind switch
        {
            ModuleKind.SelfAttention or ModuleKind.CrossAttention => new() { "nHead", "nKvHead", "headDim", "window", "attentionDropout", "Sizes", "EncoderKeysValues" },
            ModuleKind.FeedForward => new() { "act", "dropout", "gateProjection", "upProjection", "downProjection", "Sizes" },
            ModuleKind.TransformerBlock => new() { "Layer", "parallelResidual", "AttentionAdapter", "CrossAttentionAdapter", "MlpAdapter" },
            ModuleKind.TransformerStack => new() { "rotary", "VirtualPrompts", "EmbeddingShape", "SharedShape", "PositionLimit", "ContextLength",
                                                   "contextLength", "embeddingDropout", "finalDropout" },
            _ => new() { "Config", "ModelType", "VocabSize", "PositionLimit", "ContextLength", "CheckpointRules", "Head", "Hidden", "FromPretrained", "CheckpointKeys",
                         "Targets", "DecoderStartTokenId", "EncoderHidden", "DecoderHidden", "SharedShape" },
        };

        internal static List<ModuleKind> KindsOf(INamedTypeSymbol symbol)
        {
            var names = symbol.GetAttributes().Select(a => a.AttributeClass?.ToDisplayString()).ToList();
            return AttributeNames.Kinds.Where(k => names.Contains(k.Value)).Select(k => k.Key).ToList();
        }

        internal static AttributeData? KindAttribute(INamedTypeSymbol symbol) =>
            symbol.GetAttributes().FirstOrDefault(a => AttributeNames.Kinds.Values.Contains(a.AttributeClass?.ToDisplayString()));

        private static INamedTypeSymbol? ConfigOf(INamedTypeSymbol symbol) =>
            KindAttribute(symbol)?.ConstructorArguments.FirstOrDefault().Value as INamedTypeSymbol;

        internal static IEnumerable<AttributeData> AttributesOf(INamedTypeSymbol symbol, string metadataName) =>
            symbol.GetAttributes().Where(a => a.AttributeClass?.ToDisplayString() == metadataName);

        internal static INamedTypeSymbol? TypeArgument(AttributeData attribute, int index) =>
            attribute.ConstructorArguments.ElementAtOrDefault(index).Value as INamedTypeSymbol;
    }
}
