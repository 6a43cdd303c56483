using System.Text.RegularExpressions;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using PeftDsl.Generators.Diagnostics;
using PeftDsl.Generators.Model;

namespace PeftDsl.Generators.Parsing
{
    internal static class Names
    {
        private static readonly Regex CheckpointName = new(@"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*$");

        /// <summary>Validates a checkpoint name and derives its C# field: dots become underscores
        /// (<c>layer.0.SelfAttention</c> → <c>layer_0_SelfAttention</c>); keywords are escaped.</summary>
        public static Member? Member(string? name, Location? location, DiagnosticBag diagnostics)
        {
            if (name is null || !CheckpointName.IsMatch(name))
            {
                diagnostics.Add(DiagnosticDescriptors.InvalidName, location, name ?? "");
                return null;
            }
            return new Member(name, Identifier(name!.Replace('.', '_')));
        }

        public static bool IsCheckpointName(string name) => CheckpointName.IsMatch(name);

        public static string Identifier(string name) =>
            SyntaxFacts.GetKeywordKind(name) != SyntaxKind.None || SyntaxFacts.GetContextualKeywordKind(name) != SyntaxKind.None
                ? "@" + name
                : name;

        public static string FullName(ITypeSymbol type) =>
            type.ToDisplayString(SymbolDisplayFormat.FullyQualifiedFormat);
    }
}
