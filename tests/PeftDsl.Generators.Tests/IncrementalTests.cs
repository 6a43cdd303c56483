using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Xunit;

namespace PeftDsl.Generators.Tests;

/// <summary>An edit that does not touch a DSL declaration must leave every generator step cached.</summary>
public sealed class IncrementalTests
{
    [Fact]
    public void UnrelatedEditKeepsEveryStepCached()
    {
        var sources = GeneratorHarness.ModelSources("Gpt2").Append(("Other.cs", "namespace T; public class Other { }")).ToArray();
        var compilation = GeneratorHarness.Compile(sources);
        var driver = GeneratorHarness.Driver().RunGenerators(compilation);

        var other = compilation.SyntaxTrees.Single(t => t.FilePath == "Other.cs");
        var edited = compilation.ReplaceSyntaxTree(other,
            CSharpSyntaxTree.ParseText("namespace T; public class Other { public int Field; }", GeneratorHarness.ParseOptions, "Other.cs"));
        var result = driver.RunGenerators(edited).GetRunResult().Results.Single();

        var tracked = result.TrackedSteps.Where(s => s.Key.StartsWith("Module") || s.Key.StartsWith("Config")).ToList();
        Assert.Contains(tracked, s => s.Key == TrackingNames.ModuleSpec + "SelfAttention");
        Assert.Contains(tracked, s => s.Key == TrackingNames.ConfigSpec);
        foreach (var (name, steps) in tracked)
            foreach (var output in steps.SelectMany(s => s.Outputs))
                Assert.True(output.Reason is IncrementalStepRunReason.Cached or IncrementalStepRunReason.Unchanged,
                    $"step {name} was {output.Reason} after an unrelated edit");
        Assert.All(result.TrackedOutputSteps.SelectMany(s => s.Value).SelectMany(s => s.Outputs),
            o => Assert.Equal(IncrementalStepRunReason.Cached, o.Reason));
    }

    [Fact]
    public void EditingADeclarationRegeneratesOnlyThatClass()
    {
        var sources = GeneratorHarness.ModelSources("Gpt2");
        var compilation = GeneratorHarness.Compile(sources);
        var driver = GeneratorHarness.Driver().RunGenerators(compilation);

        var tree = compilation.SyntaxTrees.Single(t => t.FilePath == "Gpt2.cs");
        var text = tree.ToString().Replace("Activation = nameof(Gpt2Config.Activation)", "Activation = \"relu\"");
        var result = driver.RunGenerators(compilation.ReplaceSyntaxTree(tree,
            CSharpSyntaxTree.ParseText(text, GeneratorHarness.ParseOptions, "Gpt2.cs"))).GetRunResult().Results.Single();

        var feedForward = result.TrackedSteps[TrackingNames.ModuleSpec + "FeedForward"].SelectMany(s => s.Outputs).Single();
        var attention = result.TrackedSteps[TrackingNames.ModuleSpec + "SelfAttention"].SelectMany(s => s.Outputs).Single();
        Assert.Equal(IncrementalStepRunReason.Modified, feedForward.Reason);
        Assert.True(attention.Reason is IncrementalStepRunReason.Cached or IncrementalStepRunReason.Unchanged);
    }
}
