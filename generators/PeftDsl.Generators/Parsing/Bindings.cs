using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using Microsoft.CodeAnalysis;
using PeftDsl.Generators.Diagnostics;
using PeftDsl.Generators.Model;

namespace PeftDsl.Generators.Parsing
{
    internal enum BindingKind
    {
        /// <summary>A positive integer size.</summary>
        Size,
        /// <summary>A real number (epsilon, θ).</summary>
        Real,
        Flag,
        Activation,
        RopeType,
        /// <summary>A token id: a non-negative integer.</summary>
        TokenId,
        /// <summary>An attention window: a non-negative integer, 0 for none.</summary>
        Window,
        /// <summary>A dropout probability: a number in [0, 1].</summary>
        Probability,
        /// <summary>A soft-capping value: a non-negative number, 0 for none.</summary>
        Softcap,
        /// <summary>A list of numbers: a double[] member (longrope's short_factor, long_factor).</summary>
        Factors,
        /// <summary>Per-layer attention types: a string[] member (transformers' <c>layer_types</c>).</summary>
        LayerTypes,
    }

    /// <summary>Resolves binding strings: a config member name, else a literal of the expected kind.</summary>
    internal sealed class Bindings
    {
        /// <summary>Must match PeftDsl.Modules.Activations.Names (a test checks that they agree).</summary>
        public static readonly string[] Activations = { "gelu", "gelu_new", "gelu_pytorch_tanh", "gelu_fast", "relu", "silu", "swish" };

        /// <summary>Must match PeftDsl.Modules.RotaryEmbedding.RopeTypes.</summary>
        public static readonly string[] RopeTypes = { "default", "llama3", "linear", "longrope", "su" };

        private readonly INamedTypeSymbol config;
        private readonly DiagnosticBag diagnostics;

        public Bindings(INamedTypeSymbol config, DiagnosticBag diagnostics)
        {
            this.config = config;
            this.diagnostics = diagnostics;
        }

        /// <summary>Resolves a required binding; reports PEFT003 when it is missing.</summary>
        public Binding? Required(AttributeData attribute, string argument, BindingKind kind, string owner)
        {
            var value = Named(attribute, argument);
            if (string.IsNullOrWhiteSpace(value))
            {
                diagnostics.Add(DiagnosticDescriptors.MissingComponent, Where(attribute, argument), owner,
                    $"{argument} = \"…\" on [{AttributeNames.Short(attribute.AttributeClass!.ToDisplayString())}]");
                return null;
            }
            return Resolve(attribute, argument, value!, kind);
        }

        /// <summary>A dropout binding; null when absent or the literal 0 (nothing to compute).</summary>
        public Binding? Dropout(AttributeData attribute, string argument)
        {
            var binding = Optional(attribute, argument, BindingKind.Probability);
            return binding is { Literal: 0.0 } ? null : binding;
        }

        /// <summary>Resolves an optional binding; a missing one gives <paramref name="fallback"/> (null if none).</summary>
        public Binding? Optional(AttributeData attribute, string argument, BindingKind kind, string? fallback = null)
        {
            var value = Named(attribute, argument) ?? fallback;
            return string.IsNullOrWhiteSpace(value) ? null : Resolve(attribute, argument, value!, kind);
        }

        private Binding? Resolve(AttributeData attribute, string argument, string value, BindingKind kind)
        {
            if (kind == BindingKind.Flag && value.StartsWith("!"))
            {
                var inner = Resolve(attribute, argument, value.Substring(1).Trim(), kind);
                return inner is null ? null
                    : inner.Expression is "true" or "false" ? new Binding(inner.Expression == "true" ? "false" : "true", value, null)
                    : new Binding("!" + inner.Expression, "not " + inner.Display, null);
            }
            var location = Where(attribute, argument);
            var member = FindMember(value);
            if (member is not null)
                return FromMember(member.Value, argument, value, kind, location);
            switch (kind)
            {
                case BindingKind.Size:
                    if (long.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out var size))
                    {
                        if (size > 0) return new Binding(size.ToString(CultureInfo.InvariantCulture), value, size);
                        diagnostics.Add(DiagnosticDescriptors.BindingType, location, argument, value, "a size must be a positive integer");
                        return null;
                    }
                    break;
                case BindingKind.TokenId:
                case BindingKind.Window:
                    if (long.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out var id))
                    {
                        if (id >= 0) return new Binding(id.ToString(CultureInfo.InvariantCulture), value, id);
                        diagnostics.Add(DiagnosticDescriptors.BindingType, location, argument, value,
                            kind == BindingKind.Window ? "a window must not be negative (0: none)" : "a token id must not be negative");
                        return null;
                    }
                    break;
                case BindingKind.Real:
                    if (double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var real))
                        return new Binding(Literals.Double(real), value, real);
                    break;
                case BindingKind.Probability:
                    if (double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var probability))
                    {
                        if (probability >= 0 && probability <= 1) return new Binding(Literals.Double(probability), value, probability);
                        diagnostics.Add(DiagnosticDescriptors.BindingType, location, argument, value, "a dropout probability must be in [0, 1]");
                        return null;
                    }
                    break;
                case BindingKind.Flag:
                    if (value == "true" || value == "false") return new Binding(value, value, null);
                    break;
                case BindingKind.Softcap:
                    if (double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var cap))
                    {
                        if (cap >= 0 && !double.IsInfinity(cap)) return new Binding(Literals.Double(cap), value, cap);
                        diagnostics.Add(DiagnosticDescriptors.BindingType, location, argument, value, "a soft-capping value must be a finite number ≥ 0 (0: none)");
                        return null;
                    }
                    break;
                case BindingKind.Activation:
                    if (Activations.Contains(value)) return new Binding(Literals.String(value), value, null);
                    diagnostics.Add(DiagnosticDescriptors.UnknownActivation, location, value, string.Join(", ", Activations));
                    return null;
                case BindingKind.RopeType:
                    if (RopeTypes.Contains(value)) return new Binding(Literals.String(value), value, null);
                    break;
            }
            diagnostics.Add(DiagnosticDescriptors.UnknownBinding, location, argument, value, config.Name, Describe(kind));
            return null;
        }

        private Binding? FromMember((ISymbol Symbol, ITypeSymbol Type) member, string argument, string value, BindingKind kind, Location? location)
        {
            var type = member.Type;
            if (type.OriginalDefinition.SpecialType == SpecialType.System_Nullable_T
                || (type.IsReferenceType && type.NullableAnnotation == NullableAnnotation.Annotated))
            {
                diagnostics.Add(DiagnosticDescriptors.BindingType, location, argument, value,
                    $"{config.Name}.{value} is nullable ({type.ToDisplayString()}); bind a non-nullable member, for example a computed property that supplies the default");
                return null;
            }
            var ok = kind switch
            {
                BindingKind.Size or BindingKind.TokenId or BindingKind.Window => type.SpecialType is SpecialType.System_Int32 or SpecialType.System_Int64,
                BindingKind.Real or BindingKind.Probability or BindingKind.Softcap => type.SpecialType is SpecialType.System_Int32 or SpecialType.System_Int64
                    or SpecialType.System_Single or SpecialType.System_Double,
                BindingKind.Flag => type.SpecialType == SpecialType.System_Boolean,
                BindingKind.Factors => type is IArrayTypeSymbol { Rank: 1, ElementType.SpecialType: SpecialType.System_Double },
                BindingKind.LayerTypes => type is IArrayTypeSymbol { Rank: 1, ElementType.SpecialType: SpecialType.System_String },
                _ => type.SpecialType == SpecialType.System_String,
            };
            if (!ok)
            {
                diagnostics.Add(DiagnosticDescriptors.BindingType, location, argument, value,
                    $"{config.Name}.{value} is {type.ToDisplayString()}, but {argument} needs {Describe(kind)}");
                return null;
            }
            var key = member.Symbol.GetAttributes()
                .FirstOrDefault(a => a.AttributeClass?.ToDisplayString() == AttributeNames.ConfigKey)?
                .ConstructorArguments.FirstOrDefault().Values.FirstOrDefault().Value as string;
            return new Binding("config." + Names.Identifier(member.Symbol.Name), key ?? value, null);
        }

        private (ISymbol, ITypeSymbol)? FindMember(string name)
        {
            for (var t = config; t is not null; t = t.BaseType)
            {
                foreach (var m in t.GetMembers(name))
                {
                    if (m.IsStatic) continue;
                    if (m is IPropertySymbol p && p.GetMethod is not null && !p.IsIndexer) return (p, p.Type);
                    if (m is IFieldSymbol f && !f.IsImplicitlyDeclared) return (f, f.Type);
                }
            }
            return null;
        }

        private static string Describe(BindingKind kind) => kind switch
        {
            BindingKind.Size => "positive integer",
            BindingKind.TokenId => "token id",
            BindingKind.Window => "non-negative integer (0: no window)",
            BindingKind.Real => "number",
            BindingKind.Probability => "probability (a number in [0, 1])",
            BindingKind.Flag => "true/false",
            BindingKind.Softcap => "non-negative number (0: none)",
            BindingKind.Factors => "double[] member",
            BindingKind.LayerTypes => "string[] member (layer_types: one \"full_attention\" or \"sliding_attention\" per layer)",
            BindingKind.Activation => "activation",
            _ => "rope type (" + string.Join(", ", RopeTypes) + ")",
        };

        public static string? Named(AttributeData attribute, string argument)
        {
            foreach (var pair in attribute.NamedArguments)
                if (pair.Key == argument) return pair.Value.Value as string;
            return null;
        }

        public static T NamedValue<T>(AttributeData attribute, string argument, T fallback)
        {
            foreach (var pair in attribute.NamedArguments)
                if (pair.Key == argument && pair.Value.Value is T value) return value;
            return fallback;
        }

        /// <summary>The argument's own syntax when it was written, else the attribute.</summary>
        public static Location? Where(AttributeData attribute, string? argument = null)
        {
            var syntax = attribute.ApplicationSyntaxReference?.GetSyntax() as Microsoft.CodeAnalysis.CSharp.Syntax.AttributeSyntax;
            if (syntax is null) return null;
            if (argument is not null && syntax.ArgumentList is not null)
            {
                foreach (var arg in syntax.ArgumentList.Arguments)
                    if (arg.NameEquals?.Name.Identifier.ValueText == argument) return arg.GetLocation();
            }
            return syntax.GetLocation();
        }

        public static IEnumerable<string> Strings(TypedConstant constant) =>
            constant.Kind == TypedConstantKind.Array
                ? constant.Values.Select(v => v.Value as string).OfType<string>()
                : Enumerable.Empty<string>();
    }
}
