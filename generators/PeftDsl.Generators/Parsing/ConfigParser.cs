using System.Linq;
using System.Threading;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using PeftDsl.Generators.Diagnostics;
using PeftDsl.Generators.Model;

namespace PeftDsl.Generators.Parsing
{
    /// <summary>A [ModelConfig] record → the members config.json binds.</summary>
    internal static class ConfigParser
    {
        public static ParseResult<ConfigSpec> Parse(GeneratorAttributeSyntaxContext context, CancellationToken cancellationToken)
        {
            var type = (INamedTypeSymbol)context.TargetSymbol;
            var diagnostics = new DiagnosticBag();
            var location = type.Locations.FirstOrDefault();
            var partial = type.DeclaringSyntaxReferences.All(r =>
                r.GetSyntax(cancellationToken) is TypeDeclarationSyntax t && t.Modifiers.Any(SyntaxKind.PartialKeyword));
            if (!type.IsRecord || type.IsValueType || !type.InstanceConstructors.Any(c => c.Parameters.Length == 0))
                diagnostics.Add(DiagnosticDescriptors.ConfigNotRecord, location, type.Name);
            else if (!partial)
                diagnostics.Add(DiagnosticDescriptors.NotPartial, location, type.Name);
            if (type.ContainingType is not null)
                diagnostics.Add(DiagnosticDescriptors.NestedType, location, type.Name);

            var members = new System.Collections.Generic.List<ConfigMemberSpec>();
            foreach (var property in type.GetMembers().OfType<IPropertySymbol>().Where(p => !p.IsStatic))
            {
                var keyAttribute = property.GetAttributes().FirstOrDefault(a => a.AttributeClass?.ToDisplayString() == AttributeNames.ConfigKey);
                var propertyLocation = property.Locations.FirstOrDefault();
                if (keyAttribute is null)
                {
                    if (property.IsRequired)
                        diagnostics.Add(DiagnosticDescriptors.RequiredWithoutKey, propertyLocation, property.Name);
                    continue;
                }
                var keys = keyAttribute.ConstructorArguments.SelectMany(Bindings.Strings).Where(k => k.Length > 0).ToList();
                if (keys.Count == 0)
                {
                    diagnostics.Add(DiagnosticDescriptors.InvalidConfigKey, Bindings.Where(keyAttribute), property.Name);
                    continue;
                }
                if (property.SetMethod is null)
                {
                    diagnostics.Add(DiagnosticDescriptors.ConfigKeyNotSettable, propertyLocation, property.Name);
                    continue;
                }
                var (typeName, nullable) = Describe(property.Type);
                if (typeName is null)
                {
                    diagnostics.Add(DiagnosticDescriptors.UnsupportedConfigType, propertyLocation, property.Name, property.Type.ToDisplayString());
                    continue;
                }
                var computes = Computes(keyAttribute, property, typeName, nullable, diagnostics);
                members.Add(new ConfigMemberSpec(property.Name, typeName, nullable, property.IsRequired, keys.ToEquatableArray(), computes));
            }
            var ns = type.ContainingNamespace.IsGlobalNamespace ? null : type.ContainingNamespace.ToDisplayString();
            if (!diagnostics.HasErrors) return new ParseResult<ConfigSpec>(new ConfigSpec(ns, type.Name, members.ToEquatableArray()), diagnostics.ToArray());
            // Refused, but completable: a skeleton keeps FromJson and Load, so the PEFT diagnostic stands alone.
            var completable = partial && type.ContainingType is null && !type.IsGenericType && !type.IsValueType;
            return new ParseResult<ConfigSpec>(null, diagnostics.ToArray(), ConfigSkeleton: completable ? new ConfigSkeletonSpec(ns, type.Name, type.IsRecord) : null);
        }

        /// <summary>[ConfigKey(Computes = …)] as C# literals, each checked against the property's type.</summary>
        private static EquatableArray<string>? Computes(AttributeData attribute, IPropertySymbol property, string typeName, bool nullable, DiagnosticBag diagnostics)
        {
            var named = attribute.NamedArguments.FirstOrDefault(a => a.Key == "Computes");
            if (named.Key is null || named.Value.IsNull || named.Value.Kind != TypedConstantKind.Array) return null;
            var literals = new System.Collections.Generic.List<string>();
            foreach (var item in named.Value.Values)
            {
                var value = item.Kind == TypedConstantKind.Array ? null : item.Value;
                string? literal = value switch
                {
                    null when nullable || typeName == "string" => "null",
                    string text when typeName == "string" => Literals.String(text),
                    bool b when typeName == "bool" => b ? "true" : "false",
                    int or long or double or float when typeName is "int" or "long" => value is int or long ? System.Convert.ToString(value, System.Globalization.CultureInfo.InvariantCulture) + "L" : null,
                    int or long or double or float when typeName is "double" or "float" => Literals.Double(System.Convert.ToDouble(value, System.Globalization.CultureInfo.InvariantCulture)),
                    _ => null,
                };
                if (literal is null)
                {
                    diagnostics.Add(DiagnosticDescriptors.ComputesWrongType, Bindings.Where(attribute, "Computes"), property.Name,
                        value is string s ? Literals.String(s) : value is bool bv ? (bv ? "true" : "false") : System.Convert.ToString(value, System.Globalization.CultureInfo.InvariantCulture) ?? "null",
                        typeName + (nullable ? "?" : ""));
                    return null;
                }
                literals.Add(literal);
            }
            return literals.ToEquatableArray();
        }

        private static (string? Name, bool Nullable) Describe(ITypeSymbol type)
        {
            var nullable = false;
            if (type is INamedTypeSymbol { OriginalDefinition.SpecialType: SpecialType.System_Nullable_T } n)
            {
                type = n.TypeArguments[0];
                nullable = true;
            }
            else if (type.IsReferenceType && type.NullableAnnotation == NullableAnnotation.Annotated)
            {
                nullable = true;
            }
            // Lists: layer_types (Gemma 2/3, Mistral) and longrope's short/long factors (Phi-3).
            if (type is IArrayTypeSymbol { Rank: 1 } array)
                return (array.ElementType.SpecialType switch
                {
                    SpecialType.System_String => "string[]",
                    SpecialType.System_Double => "double[]",
                    _ => null,
                }, nullable);
            var name = type.SpecialType switch
            {
                SpecialType.System_Int32 => "int",
                SpecialType.System_Int64 => "long",
                SpecialType.System_Single => "float",
                SpecialType.System_Double => "double",
                SpecialType.System_Boolean => "bool",
                SpecialType.System_String => "string",
                _ => null,
            };
            return (name, nullable);
        }
    }
}
