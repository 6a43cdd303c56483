using System.Text.RegularExpressions;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using PeftDsl.Testing;
using Xunit;

namespace PeftDsl.Generators.Tests;

/// <summary>Every complete C# example in the README and docs (a block that starts with its usings) compiles against
/// the runtime and the stock models: a promise a newcomer copies must not be a compile error.</summary>
public sealed class DocSnippetTests
{
    public static TheoryData<string, int> Snippets()
    {
        var data = new TheoryData<string, int>();
        foreach (var doc in Documents())
            for (var i = 0; i < Blocks(doc).Count; i++)
                data.Add(Path.GetRelativePath(Repo.Root(), doc), i);
        return data;
    }

    [Theory]
    [MemberData(nameof(Snippets))]
    public void CompleteSnippetsCompile(string document, int index)
    {
        var code = Blocks(Repo.File(document))[index];
        var references = ((string)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES")!).Split(Path.PathSeparator)
            .Append(typeof(PeftDsl.Runtime.LanguageModel).Assembly.Location)
            .Append(typeof(PeftDsl.Models.StockModels).Assembly.Location)
            .Append(typeof(TorchSharp.torch).Assembly.Location)
            .Distinct()
            .Select(p => (MetadataReference)MetadataReference.CreateFromFile(p));
        var compilation = CSharpCompilation.Create("Snippet",
            [CSharpSyntaxTree.ParseText(code, GeneratorHarness.ParseOptions), CSharpSyntaxTree.ParseText(ImplicitUsings, GeneratorHarness.ParseOptions)],
            references,
            new CSharpCompilationOptions(OutputKind.ConsoleApplication, nullableContextOptions: NullableContextOptions.Enable));
        var errors = compilation.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error).ToList();
        Assert.True(errors.Count == 0, $"{document} snippet {index}:\n{string.Join("\n", errors)}\n---\n{code}");
    }

    /// <summary>What a new console project's <c>ImplicitUsings</c> brings.</summary>
    private const string ImplicitUsings = "global using System; global using System.Collections.Generic; global using System.IO; " +
                                          "global using System.Linq; global using System.Net.Http; global using System.Threading; global using System.Threading.Tasks;";

    private static IEnumerable<string> Documents() =>
        new[] { Repo.File("README.md") }.Concat(Directory.GetFiles(Repo.File("docs"), "*.md").Order(StringComparer.Ordinal));

    /// <summary>```csharp blocks that open with a using directive; fragments (no usings) and declarations that
    /// need the generator are left out.</summary>
    private static List<string> Blocks(string path) =>
        Regex.Matches(File.ReadAllText(path), "```csharp\n(.*?)```", RegexOptions.Singleline)
            .Select(m => m.Groups[1].Value)
            .Where(b => Regex.IsMatch(b, @"^using (static )?[A-Za-z_][\w.]*;") && !b.Contains("[ModelConfig]"))
            .ToList();
}
