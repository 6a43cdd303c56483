using Microsoft.CodeAnalysis;
using Xunit;

namespace PeftDsl.Generators.Tests;

/// <summary>Every invalid declaration gives exactly the expected PEFT diagnostics (all of them, at the expected
/// lines), no generator exception, and no generated source for the broken class.</summary>
public sealed class DiagnosticTests
{
    private const string Prelude = """
        using PeftDsl.Dsl;
        namespace T;
        [ModelConfig]
        public sealed partial record C
        {
            [ConfigKey("hidden")] public int Hidden { get; init; } = 32;
            [ConfigKey("heads")] public int Heads { get; init; } = 4;
            [ConfigKey("act")] public string Act { get; init; } = "relu";
            [ConfigKey("maybe")] public int? Maybe { get; init; }
            [ConfigKey("eps")] public double Eps { get; init; } = 1e-5;
        }
        [ModelConfig]
        public sealed partial record D { [ConfigKey("hidden")] public int Hidden { get; init; } = 32; }
        [FeedForward(typeof(C), Dim = "Hidden", Inner = "64", Activation = "relu")]
        [Projection("up", ProjectionRole.Up)]
        [Projection("down", ProjectionRole.Down)]
        public partial class GoodMlp;
        [SelfAttention(typeof(C), Dim = "Hidden", Heads = "Heads", Causal = true, Rotary = true)]
        [Projection("qkv", ProjectionRole.Qkv)]
        [Projection("out", ProjectionRole.Output)]
        public partial class RotaryAttention;

        """;

    /// <summary>The prelude is valid on its own.</summary>
    [Fact]
    public void PreludeIsClean() => Assert.Empty(PeftDiagnostics(""));

    [Theory]
    [InlineData("PEFT001", """
        [FeedForward(typeof(C), Dim = "Hidden", Inner = "64", Activation = "relu")]
        [Projection("up", ProjectionRole.Up)] [Projection("down", ProjectionRole.Down)]
        public class NotPartial;
        """)]
    [InlineData("PEFT002", """
        [FeedForward(typeof(C), Dim = "Hiden", Inner = "64", Activation = "relu")]
        [Projection("up", ProjectionRole.Up)] [Projection("down", ProjectionRole.Down)]
        public partial class Typo;
        """)]
    [InlineData("PEFT003", """
        [FeedForward(typeof(C), Dim = "Hidden", Inner = "64", Activation = "relu")]
        [Projection("up", ProjectionRole.Up)]
        public partial class NoDown;
        """)]
    [InlineData("PEFT003", """
        [FeedForward(typeof(C), Inner = "64", Activation = "relu")]
        [Projection("up", ProjectionRole.Up)] [Projection("down", ProjectionRole.Down)]
        public partial class NoDim;
        """)]
    [InlineData("PEFT004", """
        [SelfAttention(typeof(C), Dim = "30", Heads = "4")]
        [Projection("qkv", ProjectionRole.Qkv)] [Projection("o", ProjectionRole.Output)]
        public partial class Indivisible;
        """)]
    [InlineData("PEFT004", """
        [SelfAttention(typeof(C), Dim = "32", Heads = "4", KvHeads = "3")]
        [Projection("q", ProjectionRole.Query)] [Projection("kv", ProjectionRole.KeyValue)] [Projection("o", ProjectionRole.Output)]
        public partial class BadGroups;
        """)]
    [InlineData("PEFT005", """
        [FeedForward(typeof(C), Dim = "Hidden", Inner = "64", Activation = "relu")]
        [Projection("fc", ProjectionRole.Up)] [Projection("fc", ProjectionRole.Down)]
        public partial class Twice;
        """)]
    [InlineData("PEFT006", """
        [FeedForward(typeof(C), Dim = "Hidden", Inner = "64", Activation = "geluu")]
        [Projection("up", ProjectionRole.Up)] [Projection("down", ProjectionRole.Down)]
        public partial class BadAct;
        """)]
    [InlineData("PEFT007", """
        [FeedForward(typeof(C), Dim = "Maybe", Inner = "64", Activation = "relu")]
        [Projection("up", ProjectionRole.Up)] [Projection("down", ProjectionRole.Down)]
        public partial class NullableDim;
        """)]
    [InlineData("PEFT007", """
        [FeedForward(typeof(C), Dim = "Act", Inner = "0", Activation = "relu")]
        [Projection("up", ProjectionRole.Up)] [Projection("down", ProjectionRole.Down)]
        public partial class StringDimZeroInner;
        """, 2)]
    [InlineData("PEFT008", """
        [TransformerStack(typeof(C), Dim = "Hidden")]
        [TokenEmbedding("wte", Vocab = "100")]
        [Blocks("h", typeof(GoodMlp), Count = "2")]
        [FinalNorm("ln_f", NormKind.LayerNorm)]
        public partial class BlocksOfMlps;
        """)]
    [InlineData("PEFT009", """
        [FeedForward(typeof(C), Dim = "Hidden", Inner = "64", Activation = "relu")]
        [SelfAttention(typeof(C), Dim = "Hidden", Heads = "Heads")]
        public partial class TwoKinds;
        """)]
    [InlineData("PEFT010", """
        [TransformerBlock(typeof(D), Dim = "Hidden")]
        [Sublayer("mlp", typeof(GoodMlp), Norm = "ln")]
        public partial class OtherConfig;
        """)]
    [InlineData("PEFT011", """
        [ModelConfig] public sealed partial class NotRecord { [ConfigKey("x")] public int X { get; init; } }
        """)]
    [InlineData("PEFT012", """
        [FeedForward(typeof(C), Dim = "Hidden", Inner = "64", Activation = "relu")]
        [Projection("c fc", ProjectionRole.Up)] [Projection("down", ProjectionRole.Down)]
        public partial class BadName;
        """)]
    [InlineData("PEFT013", """
        [SelfAttention(typeof(C), Dim = "Hidden", Heads = "Heads")]
        [Projection("qkv", ProjectionRole.Qkv)] [Projection("q", ProjectionRole.Query)] [Projection("o", ProjectionRole.Output)]
        public partial class FusedAndSplit;
        """)]
    [InlineData("PEFT013", """
        [SelfAttention(typeof(C), Dim = "Hidden", Heads = "Heads")]
        [Projection("qkv", ProjectionRole.Qkv)] [Projection("o", ProjectionRole.Output)] [Projection("up", ProjectionRole.Up)]
        public partial class MlpRoleInAttention;
        """)]
    [InlineData("PEFT013", """
        [CrossAttention(typeof(C), Dim = "Hidden", Heads = "Heads")]
        [Projection("qkv", ProjectionRole.Qkv)] [Projection("o", ProjectionRole.Output)]
        public partial class FusedCross;
        """)]
    [InlineData("PEFT013", """
        [SelfAttention(typeof(C), Dim = "Hidden", Heads = "Heads")]
        [Projection("qkv", ProjectionRole.Qkv, When = "true")] [Projection("o", ProjectionRole.Output)]
        public partial class ConditionalAttention;
        """)]
    [InlineData("PEFT014", """
        [TransformerBlock(typeof(C), Dim = "Hidden")]
        [Sublayer("mlp", typeof(GoodMlp), Norm = "ln")]
        public partial class Block;
        [TransformerStack(typeof(C), Dim = "Hidden")]
        [TokenEmbedding("wte", Vocab = "100")]
        [Blocks("h", typeof(Block), Count = "2")]
        [FinalNorm("ln_f", NormKind.LayerNorm)]
        public partial class Stack;
        [CausalLM(typeof(C))]
        [Body("transformer", typeof(Stack))]
        [LmHead("lm_head", TiedTo = "transformer.wpe")]
        public partial class Lm;
        """)]
    [InlineData("PEFT015", """
        [FeedForward(typeof(C), Dim = "Hidden", Inner = "64", Activation = "relu")]
        [Projection("up", ProjectionRole.Up)] [Projection("down", ProjectionRole.Down)]
        [Sublayer("x", typeof(GoodMlp), Norm = "n")]
        public partial class MisplacedSublayer;
        """)]
    [InlineData("PEFT016", """
        [ModelConfig] public sealed partial record Lists { [ConfigKey("x")] public int[] X { get; init; } = []; }
        """)]
    [InlineData("PEFT017", """
        [ModelConfig] public sealed partial record NoKey { public required int X { get; init; } }
        """)]
    [InlineData("PEFT018", """
        public static partial class Outer
        {
            [FeedForward(typeof(C), Dim = "Hidden", Inner = "64", Activation = "relu")]
            [Projection("up", ProjectionRole.Up)] [Projection("down", ProjectionRole.Down)]
            public partial class Inner;
        }
        """)]
    [InlineData("PEFT019", """
        [ModelConfig] public sealed partial record ReadOnly { [ConfigKey("x")] public int X => 3; }
        """)]
    [InlineData("PEFT020", """
        public class Base;
        [FeedForward(typeof(C), Dim = "Hidden", Inner = "64", Activation = "relu")]
        [Projection("up", ProjectionRole.Up)] [Projection("down", ProjectionRole.Down)]
        public partial class Derived : Base;
        """)]
    [InlineData("PEFT021", """
        [TransformerBlock(typeof(C), Dim = "Hidden")]
        [Sublayer("attn", typeof(RotaryAttention), Norm = "ln")]
        public partial class RotaryBlock;
        [TransformerStack(typeof(C), Dim = "Hidden")]
        [TokenEmbedding("wte", Vocab = "100")]
        [Blocks("h", typeof(RotaryBlock), Count = "2")]
        [FinalNorm("ln_f", NormKind.RmsNorm)]
        public partial class NoRotaryStack;
        """)]
    [InlineData("PEFT023", """
        [TransformerBlock(typeof(C), Dim = "Hidden")]
        [Sublayer("mlp", typeof(GoodMlp), Norm = "ln")]
        public partial class Block;
        [TransformerStack(typeof(C), Dim = "Hidden")]
        [TokenEmbedding("wte", Shared = true)]
        [Blocks("h", typeof(Block), Count = "2")]
        [FinalNorm("ln_f", NormKind.LayerNorm)]
        public partial class SharedStack;
        [CausalLM(typeof(C))]
        [Body("transformer", typeof(SharedStack))]
        [LmHead("lm_head")]
        public partial class Lm;
        """)]
    [InlineData("PEFT022", """
        [ModelConfig] public sealed partial record EmptyKey { [ConfigKey("")] public int X { get; init; } }
        """)]
    [InlineData("PEFT024", """
        [ModelConfig] public sealed partial record WrongComputes { [ConfigKey("use_parallel_residual", Computes = new object[] { "yes" })] public bool X { get; init; } }
        """)]
    [InlineData("PEFT024", """
        [ModelConfig] public sealed partial record NullForNonNullable { [ConfigKey("window", Computes = new object?[] { null })] public int X { get; init; } }
        """)]
    [InlineData("PEFT013", """
        [SelfAttention(typeof(C), Dim = "Hidden", Heads = "Heads", SlidingWindow = "4")]
        [Projection("qkv", ProjectionRole.Qkv)] [Projection("out", ProjectionRole.Output)]
        public partial class WindowWithoutCausal;
        """)]
    [InlineData("PEFT007", """
        [SelfAttention(typeof(C), Dim = "Hidden", Heads = "Heads", Causal = true, SlidingWindow = "-1")]
        [Projection("qkv", ProjectionRole.Qkv)] [Projection("out", ProjectionRole.Output)]
        public partial class NegativeWindow;
        """)]
    [InlineData("PEFT013", """
        [SelfAttention(typeof(C), Dim = "Hidden", Heads = "Heads")]
        [Projection("q", ProjectionRole.Query, QkvLayout = QkvLayout.Interleaved)]
        [Projection("k", ProjectionRole.Key)] [Projection("v", ProjectionRole.Value)] [Projection("out", ProjectionRole.Output)]
        public partial class InterleavedQuery;
        """)]
    [InlineData("PEFT005", """
        [TransformerBlock(typeof(C), Dim = "Hidden")]
        [Sublayer("attn", typeof(RotaryAttention), Norm = "ln")]
        [Sublayer("mlp", typeof(GoodMlp), Norm = "ln")]
        public partial class SharedNormInSequence;
        """)]
    [InlineData("PEFT007", """
        [TransformerStack(typeof(C), Dim = "Hidden")]
        [TokenEmbedding("wte", Vocab = "100")]
        [RotaryEmbedding(HeadDim = "8", Fraction = "1.5")]
        [Blocks("h", typeof(GoodBlock), Count = "2")]
        [FinalNorm("ln_f", NormKind.RmsNorm)]
        public partial class TooMuchRotary;
        [TransformerBlock(typeof(C), Dim = "Hidden")]
        [Sublayer("mlp", typeof(GoodMlp), Norm = "ln")]
        public partial class GoodBlock;
        """)]
    [InlineData("PEFT003", """
        [TransformerStack(typeof(C), Dim = "Hidden")]
        [TokenEmbedding("wte", Vocab = "100")]
        [RotaryEmbedding(HeadDim = "8", RopeType = "llama3", ScalingFactor = "8")]
        [Blocks("h", typeof(GoodBlock), Count = "2")]
        [FinalNorm("ln_f", NormKind.RmsNorm)]
        public partial class HalfScaling;
        [TransformerBlock(typeof(C), Dim = "Hidden")]
        [Sublayer("mlp", typeof(GoodMlp), Norm = "ln")]
        public partial class GoodBlock;
        """)]
    public void InvalidDeclarationReportsExactlyItsDiagnostics(string id, string declaration, int count = 1)
    {
        var diagnostics = PeftDiagnostics(declaration);

        Assert.All(diagnostics, d => Assert.Equal(id, d.Id));
        Assert.Equal(count, diagnostics.Count);
        Assert.All(diagnostics, d => Assert.Equal(DiagnosticSeverity.Error, d.Severity));
        var line = diagnostics[0].Location.GetLineSpan().StartLinePosition.Line;
        Assert.True(line >= Prelude.Split('\n').Length - 1, $"{id} should point into the declaration, not the prelude (line {line})");
    }

    /// <summary>Sublayers of a parallel block may share one norm (GPT-J, Falcon); the block gets one norm module.</summary>
    [Fact]
    public void AParallelBlockMayShareOneNorm()
    {
        var (run, _) = GeneratorHarness.Run(("Test.cs", Prelude + """
            [TransformerBlock(typeof(C), Dim = "Hidden", ParallelResidual = "true")]
            [Sublayer("attn", typeof(RotaryAttention), Norm = "ln")]
            [Sublayer("mlp", typeof(GoodMlp), Norm = "ln")]
            public partial class OneNorm;
            """));
        Assert.Empty(run.Diagnostics.Where(d => d.Id.StartsWith("PEFT", StringComparison.Ordinal)));
        var source = run.Results.Single().GeneratedSources.Single(f => f.HintName == "T.OneNorm.g.cs").SourceText.ToString();
        Assert.Single(System.Text.RegularExpressions.Regex.Matches(source, @"public readonly global::PeftDsl\.Modules\.LayerNorm ln;"));
        Assert.Contains("var h_ln = this.ln.forward(x);", source);
    }

    [Fact]
    public void SeveralProblemsInOneClassAreAllReported()
    {
        var diagnostics = PeftDiagnostics("""
            [FeedForward(typeof(C), Dim = "Hiden", Inner = "Maybe", Activation = "geluu")]
            [Projection("up", ProjectionRole.Up)]
            public partial class ManyErrors;
            """);

        Assert.Equal(["PEFT002", "PEFT003", "PEFT006", "PEFT007"], diagnostics.Select(d => d.Id).Order().ToArray());
    }

    [Fact]
    public void BrokenClassGetsNoSourceButValidOnesDo()
    {
        var (run, _) = GeneratorHarness.Run(("Test.cs", Prelude + """
            [FeedForward(typeof(C), Dim = "Hiden", Inner = "64", Activation = "relu")]
            [Projection("up", ProjectionRole.Up)] [Projection("down", ProjectionRole.Down)]
            public partial class Broken;
            """));

        var hints = run.Results.Single().GeneratedSources.Select(s => s.HintName).ToList();
        Assert.DoesNotContain("T.Broken.g.cs", hints);
        Assert.Contains("T.GoodMlp.g.cs", hints);
        Assert.Contains("T.C.g.cs", hints);
    }

    private static List<Diagnostic> PeftDiagnostics(string declaration)
    {
        var (run, output) = GeneratorHarness.Run(("Test.cs", Prelude + declaration));
        // A generator exception surfaces as CS8784/CS8785 warnings: the generator must never throw.
        Assert.DoesNotContain(output.GetDiagnostics(), d => d.Id is "CS8784" or "CS8785");
        Assert.All(run.Results, r => Assert.Null(r.Exception));
        return run.Diagnostics.Where(d => d.Id.StartsWith("PEFT", StringComparison.Ordinal))
            .OrderBy(d => d.Location.SourceSpan.Start).ToList();
    }
}
