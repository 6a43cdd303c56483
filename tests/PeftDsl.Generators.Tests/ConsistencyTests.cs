using System.Text.RegularExpressions;
using PeftDsl.Generators.Parsing;
using PeftDsl.Testing;
using Xunit;

namespace PeftDsl.Generators.Tests;

/// <summary>Lists the generator keeps in step with the runtime and the docs.</summary>
public sealed class ConsistencyTests
{
    [Fact]
    public void GeneratorAcceptsExactlyTheRuntimeActivations() =>
        Assert.Equal(PeftDsl.Modules.Activations.Names.Order(), Bindings.Activations.Order());

    [Fact]
    public void EveryDiagnosticIsDocumentedAndTracked()
    {
        var ids = typeof(Diagnostics.DiagnosticDescriptors).GetFields()
            .Select(f => f.GetValue(null)).OfType<Microsoft.CodeAnalysis.DiagnosticDescriptor>()
            .Select(d => d.Id).ToList();
        var docs = File.ReadAllText(Repo.File("docs", "diagnostics.md"));
        var releases = File.ReadAllText(Repo.File("generators", "PeftDsl.Generators", "AnalyzerReleases.Unshipped.md"));

        Assert.Equal(ids.Count, ids.Distinct().Count());
        foreach (var id in ids)
        {
            Assert.Matches(new Regex($"^## {id}\\b", RegexOptions.Multiline), docs);
            Assert.Matches(new Regex($"^{id} \\|", RegexOptions.Multiline), releases);
        }
    }
}
