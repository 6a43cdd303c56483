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
            [ConfigKey("use_parallel_residual")] public bool Parallel { get; init; } = true;
            [ConfigKey("layer_types")] public string[] Types { get; init; } = [];
            [ConfigKey("short_factor")] public double[] Factors { get; init; } = [];
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
        public class ⟦NotPartial;
        """)]
    [InlineData("PEFT002", """
        [FeedForward(typeof(C), ⟦Dim = "Hiden", Inner = "64", Activation = "relu")]
        [Projection("up", ProjectionRole.Up)] [Projection("down", ProjectionRole.Down)]
        public partial class Typo;
        """)]
    [InlineData("PEFT003", """
        [FeedForward(typeof(C), Dim = "Hidden", Inner = "64", Activation = "relu")]
        [Projection("up", ProjectionRole.Up)]
        public partial class ⟦NoDown;
        """)]
    [InlineData("PEFT003", """
        [⟦FeedForward(typeof(C), Inner = "64", Activation = "relu")]
        [Projection("up", ProjectionRole.Up)] [Projection("down", ProjectionRole.Down)]
        public partial class NoDim;
        """)]
    [InlineData("PEFT004", """
        [SelfAttention(typeof(C), Dim = "30", ⟦Heads = "4")]
        [Projection("qkv", ProjectionRole.Qkv)] [Projection("o", ProjectionRole.Output)]
        public partial class Indivisible;
        """)]
    [InlineData("PEFT004", """
        [SelfAttention(typeof(C), Dim = "32", Heads = "4", ⟦KvHeads = "3")]
        [Projection("q", ProjectionRole.Query)] [Projection("kv", ProjectionRole.KeyValue)] [Projection("o", ProjectionRole.Output)]
        public partial class BadGroups;
        """)]
    [InlineData("PEFT005", """
        [FeedForward(typeof(C), Dim = "Hidden", Inner = "64", Activation = "relu")]
        [Projection("fc", ProjectionRole.Up)] [⟦Projection("fc", ProjectionRole.Down)]
        public partial class Twice;
        """)]
    [InlineData("PEFT006", """
        [FeedForward(typeof(C), Dim = "Hidden", Inner = "64", ⟦Activation = "geluu")]
        [Projection("up", ProjectionRole.Up)] [Projection("down", ProjectionRole.Down)]
        public partial class BadAct;
        """)]
    [InlineData("PEFT007", """
        [FeedForward(typeof(C), ⟦Dim = "Maybe", Inner = "64", Activation = "relu")]
        [Projection("up", ProjectionRole.Up)] [Projection("down", ProjectionRole.Down)]
        public partial class NullableDim;
        """)]
    [InlineData("PEFT007", """
        [FeedForward(typeof(C), ⟦Dim = "Act", ⟦Inner = "0", Activation = "relu")]
        [Projection("up", ProjectionRole.Up)] [Projection("down", ProjectionRole.Down)]
        public partial class StringDimZeroInner;
        """)]
    [InlineData("PEFT007", """
        [FeedForward(typeof(C), Dim = "Hidden", Inner = "64", Activation = "relu", ⟦Dropout = "1.5")]
        [Projection("up", ProjectionRole.Up)] [Projection("down", ProjectionRole.Down)]
        public partial class DropoutAboveOne;
        """)]
    [InlineData("PEFT007", """
        [SelfAttention(typeof(C), Dim = "Hidden", Heads = "Heads", Causal = true, ⟦Dropout = "Act")]
        [Projection("qkv", ProjectionRole.Qkv)] [Projection("out", ProjectionRole.Output)]
        public partial class StringDropout;
        """)]
    [InlineData("PEFT008", """
        [TransformerStack(typeof(C), Dim = "Hidden")]
        [TokenEmbedding("wte", Vocab = "100")]
        [⟦Blocks("h", typeof(GoodMlp), Count = "2")]
        [FinalNorm("ln_f", NormKind.LayerNorm)]
        public partial class BlocksOfMlps;
        """)]
    [InlineData("PEFT009", """
        [FeedForward(typeof(C), Dim = "Hidden", Inner = "64", Activation = "relu")]
        [SelfAttention(typeof(C), Dim = "Hidden", Heads = "Heads")]
        public partial class ⟦TwoKinds;
        """)]
    [InlineData("PEFT010", """
        [TransformerBlock(typeof(D), Dim = "Hidden")]
        [⟦Sublayer("mlp", typeof(GoodMlp), Norm = "ln")]
        public partial class OtherConfig;
        """)]
    [InlineData("PEFT011", """
        [ModelConfig] public sealed partial class ⟦NotRecord { [ConfigKey("x")] public int X { get; init; } }
        """)]
    [InlineData("PEFT012", """
        [FeedForward(typeof(C), Dim = "Hidden", Inner = "64", Activation = "relu")]
        [⟦Projection("c fc", ProjectionRole.Up)] [Projection("down", ProjectionRole.Down)]
        public partial class BadName;
        """)]
    [InlineData("PEFT013", """
        [SelfAttention(typeof(C), Dim = "Hidden", Heads = "Heads")]
        [Projection("qkv", ProjectionRole.Qkv)] [Projection("q", ProjectionRole.Query)] [Projection("o", ProjectionRole.Output)]
        public partial class ⟦FusedAndSplit;
        """)]
    [InlineData("PEFT013", """
        [SelfAttention(typeof(C), Dim = "Hidden", Heads = "Heads")]
        [Projection("qkv", ProjectionRole.Qkv)] [Projection("o", ProjectionRole.Output)] [⟦Projection("up", ProjectionRole.Up)]
        public partial class MlpRoleInAttention;
        """)]
    [InlineData("PEFT013", """
        [CrossAttention(typeof(C), Dim = "Hidden", Heads = "Heads")]
        [⟦Projection("qkv", ProjectionRole.Qkv)] [Projection("o", ProjectionRole.Output)]
        public partial class FusedCross;
        """)]
    [InlineData("PEFT013", """
        [SelfAttention(typeof(C), Dim = "Hidden", Heads = "Heads")]
        [Projection("qkv", ProjectionRole.Qkv, ⟦When = "true")] [Projection("o", ProjectionRole.Output)]
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
        [LmHead("lm_head", ⟦TiedTo = "transformer.wpe")]
        public partial class Lm;
        public static class UsesTheBrokenRoot { public static object Parts(Lm m) => (m.lm_head, m.transformer, Lm.Targets.up, Lm.FromPretrained("x")); }
        """)]
    [InlineData("PEFT015", """
        [FeedForward(typeof(C), Dim = "Hidden", Inner = "64", Activation = "relu")]
        [Projection("up", ProjectionRole.Up)] [Projection("down", ProjectionRole.Down)]
        [⟦Sublayer("x", typeof(GoodMlp), Norm = "n")]
        public partial class MisplacedSublayer;
        """)]
    [InlineData("PEFT016", """
        [ModelConfig] public sealed partial record Lists { [ConfigKey("x")] public int[] ⟦X { get; init; } = []; }
        """)]
    [InlineData("PEFT017", """
        [ModelConfig] public sealed partial record NoKey { public required int ⟦X { get; init; } }
        """)]
    [InlineData("PEFT018", """
        public static partial class Outer
        {
            [FeedForward(typeof(C), Dim = "Hidden", Inner = "64", Activation = "relu")]
            [Projection("up", ProjectionRole.Up)] [Projection("down", ProjectionRole.Down)]
            public partial class ⟦Inner;
        }
        """)]
    [InlineData("PEFT019", """
        [ModelConfig] public sealed partial record ReadOnly { [ConfigKey("x")] public int ⟦X => 3; }
        """)]
    [InlineData("PEFT020", """
        public class Base;
        [FeedForward(typeof(C), Dim = "Hidden", Inner = "64", Activation = "relu")]
        [Projection("up", ProjectionRole.Up)] [Projection("down", ProjectionRole.Down)]
        public partial class ⟦Derived : Base;
        """)]
    [InlineData("PEFT021", """
        [TransformerBlock(typeof(C), Dim = "Hidden")]
        [Sublayer("attn", typeof(RotaryAttention), Norm = "ln")]
        public partial class RotaryBlock;
        [TransformerStack(typeof(C), Dim = "Hidden")]
        [TokenEmbedding("wte", Vocab = "100")]
        [⟦Blocks("h", typeof(RotaryBlock), Count = "2")]
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
        [⟦Body("transformer", typeof(SharedStack))]
        [LmHead("lm_head")]
        public partial class Lm;
        """)]
    [InlineData("PEFT022", """
        [ModelConfig] public sealed partial record EmptyKey { [⟦ConfigKey("")] public int X { get; init; } }
        """)]
    [InlineData("PEFT024", """
        [ModelConfig] public sealed partial record WrongComputes { [ConfigKey("use_parallel_residual", ⟦Computes = new object[] { "yes" })] public bool X { get; init; } }
        """)]
    [InlineData("PEFT024", """
        [ModelConfig] public sealed partial record NullForNonNullable { [ConfigKey("window", ⟦Computes = new object?[] { null })] public int X { get; init; } }
        """)]
    [InlineData("PEFT013", """
        [SelfAttention(typeof(C), Dim = "Hidden", Heads = "Heads", ⟦SlidingWindow = "Heads")]
        [Projection("qkv", ProjectionRole.Qkv)] [Projection("out", ProjectionRole.Output)]
        public partial class WindowWithoutCausal;
        """)]
    [InlineData("PEFT013", """
        [SelfAttention(typeof(C), Dim = "Hidden", Heads = "Heads", ⟦QueryNorm = "q_norm")]
        [Projection("qkv", ProjectionRole.Qkv)] [Projection("out", ProjectionRole.Output)]
        public partial class QueryNormAlone;
        """)]
    [InlineData("PEFT013", """
        [SelfAttention(typeof(C), Dim = "Hidden", Heads = "Heads", ⟦HeadNormEps = "1e-6")]
        [Projection("qkv", ProjectionRole.Qkv)] [Projection("out", ProjectionRole.Output)]
        public partial class EpsWithoutNorms;
        """)]
    [InlineData("PEFT013", """
        [SelfAttention(typeof(C), Dim = "Hidden", Heads = "Heads", ⟦HeadNormKind = NormKind.GemmaRmsNorm)]
        [Projection("qkv", ProjectionRole.Qkv)] [Projection("out", ProjectionRole.Output)]
        public partial class HeadNormKindWithoutNorms;
        """)]
    [InlineData("PEFT013", """
        [SelfAttention(typeof(C), Dim = "Hidden", Heads = "Heads", QueryNorm = "q_norm", KeyNorm = "k_norm", ⟦HeadNormKind = NormKind.LayerNorm)]
        [Projection("qkv", ProjectionRole.Qkv)] [Projection("out", ProjectionRole.Output)]
        public partial class LayerNormedHeads;
        """)]
    [InlineData("PEFT013", """
        [SelfAttention(typeof(C), Dim = "Hidden", Heads = "Heads", RelativeBias = "rel", RelativeBuckets = "32", RelativeMaxDistance = "128", ⟦Softcap = "Eps")]
        [Projection("qkv", ProjectionRole.Qkv)] [Projection("out", ProjectionRole.Output)]
        public partial class CappedRelativeBias;
        """)]
    [InlineData("PEFT029", """
        [SelfAttention(typeof(C), Dim = "Hidden", Heads = "Heads", ⟦Softcap = "50")]
        [Projection("qkv", ProjectionRole.Qkv)] [Projection("out", ProjectionRole.Output)]
        public partial class LiteralCap;
        """)]
    [InlineData("PEFT029", """
        [SelfAttention(typeof(C), Dim = "Hidden", Heads = "Heads", ⟦QueryScalar = "144")]
        [Projection("qkv", ProjectionRole.Qkv)] [Projection("out", ProjectionRole.Output)]
        public partial class LiteralQueryScalar;
        """)]
    [InlineData("PEFT007", """
        [SelfAttention(typeof(C), Dim = "Hidden", Heads = "Heads", ⟦Softcap = "-1")]
        [Projection("qkv", ProjectionRole.Qkv)] [Projection("out", ProjectionRole.Output)]
        public partial class NegativeCap;
        """)]
    [InlineData("PEFT013", """
        [SelfAttention(typeof(C), Dim = "Hidden", Heads = "Heads", Scaled = false, ⟦QueryScalar = "Eps")]
        [Projection("qkv", ProjectionRole.Qkv)] [Projection("out", ProjectionRole.Output)]
        public partial class UnscaledWithScalar;
        """)]
    [InlineData("PEFT013", """
        [SelfAttention(typeof(C), Dim = "Hidden", Heads = "Heads", Causal = true, ⟦LayerTypes = "Types")]
        [Projection("qkv", ProjectionRole.Qkv)] [Projection("out", ProjectionRole.Output)]
        public partial class LayerTypesWithoutWindow;
        """)]
    [InlineData("PEFT007", """
        [SelfAttention(typeof(C), Dim = "Hidden", Heads = "Heads", Causal = true, SlidingWindow = "Hidden", ⟦LayerTypes = "Act")]
        [Projection("qkv", ProjectionRole.Qkv)] [Projection("out", ProjectionRole.Output)]
        public partial class LayerTypesNotAList;
        """)]
    [InlineData("PEFT013", """
        [FeedForward(typeof(C), Dim = "Hidden", Inner = "64", Activation = "relu")]
        [Projection("gate_up", ProjectionRole.GateUp)] [Projection("up", ProjectionRole.Up)] [Projection("down", ProjectionRole.Down)]
        public partial class ⟦FusedAndSeparateUp;
        """)]
    [InlineData("PEFT005", """
        [TransformerBlock(typeof(C), Dim = "Hidden")]
        [⟦Sublayer("mlp", typeof(GoodMlp), Norm = "ln", PostNorm = "ln")]
        public partial class PostNormNamedLikeTheNorm;
        """)]
    [InlineData("PEFT005", """
        [SelfAttention(typeof(C), Dim = "Hidden", Heads = "Heads", QueryNorm = "q_norm", ⟦KeyNorm = "out")]
        [Projection("qkv", ProjectionRole.Qkv)] [Projection("out", ProjectionRole.Output)]
        public partial class KeyNormNamedLikeAProjection;
        """)]
    [InlineData("PEFT007", """
        [SelfAttention(typeof(C), Dim = "Hidden", Heads = "Heads", Causal = true, ⟦SlidingWindow = "-1")]
        [Projection("qkv", ProjectionRole.Qkv)] [Projection("out", ProjectionRole.Output)]
        public partial class NegativeWindow;
        """)]
    [InlineData("PEFT013", """
        [SelfAttention(typeof(C), Dim = "Hidden", Heads = "Heads")]
        [Projection("q", ProjectionRole.Query, ⟦QkvLayout = QkvLayout.Interleaved)]
        [Projection("k", ProjectionRole.Key)] [Projection("v", ProjectionRole.Value)] [Projection("out", ProjectionRole.Output)]
        public partial class InterleavedQuery;
        """)]
    [InlineData("PEFT005", """
        [TransformerBlock(typeof(C), Dim = "Hidden")]
        [Sublayer("attn", typeof(RotaryAttention), Norm = "ln")]
        [⟦Sublayer("mlp", typeof(GoodMlp), Norm = "ln")]
        public partial class SharedNormInSequence;
        """)]
    [InlineData("PEFT007", """
        [TransformerStack(typeof(C), Dim = "Hidden")]
        [TokenEmbedding("wte", Vocab = "100")]
        [RotaryEmbedding(HeadDim = "8", ⟦Fraction = "1.5")]
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
        [RotaryEmbedding(HeadDim = "8", RopeType = "llama3", ⟦ScalingFactor = "8")]
        [Blocks("h", typeof(GoodBlock), Count = "2")]
        [FinalNorm("ln_f", NormKind.RmsNorm)]
        public partial class HalfScaling;
        [TransformerBlock(typeof(C), Dim = "Hidden")]
        [Sublayer("mlp", typeof(GoodMlp), Norm = "ln")]
        public partial class GoodBlock;
        """)]
    [InlineData("PEFT003", """
        [TransformerStack(typeof(C), Dim = "Hidden")]
        [TokenEmbedding("wte", Vocab = "100")]
        [RotaryEmbedding(HeadDim = "8", RopeType = "longrope", ⟦ShortFactor = "Factors")]
        [Blocks("h", typeof(GoodBlock2), Count = "2")]
        [FinalNorm("ln_f", NormKind.RmsNorm)]
        public partial class ShortWithoutLong;
        [TransformerBlock(typeof(C), Dim = "Hidden")]
        [Sublayer("mlp", typeof(GoodMlp), Norm = "ln")]
        public partial class GoodBlock2;
        """)]
    [InlineData("PEFT003", """
        [TransformerStack(typeof(C), Dim = "Hidden")]
        [TokenEmbedding("wte", Vocab = "100")]
        [RotaryEmbedding(HeadDim = "8", ⟦RopeType = "linear")]
        [Blocks("h", typeof(GoodBlock3), Count = "2")]
        [FinalNorm("ln_f", NormKind.RmsNorm)]
        public partial class LinearWithoutFactor;
        [TransformerBlock(typeof(C), Dim = "Hidden")]
        [Sublayer("mlp", typeof(GoodMlp), Norm = "ln")]
        public partial class GoodBlock3;
        """)]
    [InlineData("PEFT013", """
        [TransformerStack(typeof(C), Dim = "Hidden")]
        [TokenEmbedding("wte", Vocab = "100")]
        [RotaryEmbedding(HeadDim = "8", ⟦LocalTheta = "Eps")]
        [Blocks("h", typeof(GoodBlock4), Count = "2")]
        [FinalNorm("ln_f", NormKind.RmsNorm)]
        public partial class LocalTablesNobodyReads;
        [TransformerBlock(typeof(C), Dim = "Hidden")]
        [Sublayer("mlp", typeof(GoodMlp), Norm = "ln")]
        public partial class GoodBlock4;
        """)]
    [InlineData("PEFT002", """
        [FeedForward(typeof(C), ⟦Dim = "Hiden", Inner = "64", Activation = "relu")]
        [Projection("up", ProjectionRole.Up)] [Projection("down", ProjectionRole.Down)]
        public partial class BrokenMlp;
        [TransformerBlock(typeof(C), Dim = "Hidden")]
        [Sublayer("mlp", typeof(BrokenMlp), Norm = "ln")]
        public partial class UsesBroken;
        [TransformerStack(typeof(C), Dim = "Hidden")]
        [TokenEmbedding("wte", Vocab = "100")]
        [Blocks("h", typeof(UsesBroken), Count = "2")]
        [FinalNorm("ln_f", NormKind.RmsNorm)]
        public partial class StackOfBroken;
        [CausalLM(typeof(C))]
        [Body("transformer", typeof(StackOfBroken))]
        [LmHead("lm_head")]
        public partial class LmOfBroken;
        public static class UserCode { public static object Make(C c) => new LmOfBroken(c); }
        """)]
    [InlineData("PEFT025", """
        [FeedForward(typeof(C), Dim = "Hidden", Inner = "64", Activation = "relu")]
        [Projection("up", ProjectionRole.Up)] [Projection("down", ProjectionRole.Down)]
        public partial record ⟦RecordMlp;
        """)]
    [InlineData("PEFT026", """
        [FeedForward(typeof(C), Dim = "Hidden", Inner = "64", Activation = "relu")]
        [Projection("up", ProjectionRole.Up)] [Projection("down", ProjectionRole.Down)]
        public partial class ⟦GenericMlp<T>;
        """)]
    [InlineData("PEFT027", """
        [SelfAttention(typeof(C), Dim = "Hidden", Heads = "Heads")]
        [Projection("qkv", ProjectionRole.Qkv)] [⟦Projection("headDim", ProjectionRole.Output)]
        public partial class NamedLikeAGeneratedMember;
        """)]
    [InlineData("PEFT027", """
        [FeedForward(typeof(C), Dim = "Hidden", Inner = "64", Activation = "relu")]
        [Projection("c.fc", ProjectionRole.Up)] [⟦Projection("c_fc", ProjectionRole.Down)]
        public partial class SameField;
        """)]
    [InlineData("PEFT003", """
        [TransformerBlock(typeof(C), Dim = "Hidden")]
        [⟦Sublayer("mlp", typeof(GoodMlp))]
        public partial class NoNorm;
        """)]
    [InlineData("PEFT004", """
        [SelfAttention(typeof(C), Dim = "32", Heads = "4", Causal = true, Rotary = true)]
        [Projection("qkv", ProjectionRole.Qkv)] [Projection("out", ProjectionRole.Output)]
        public partial class HeadOf8;
        [TransformerBlock(typeof(C), Dim = "Hidden")]
        [Sublayer("attn", typeof(HeadOf8), Norm = "ln")]
        public partial class BlockOf8;
        [TransformerStack(typeof(C), Dim = "Hidden")]
        [TokenEmbedding("wte", Vocab = "100")]
        [RotaryEmbedding(⟦HeadDim = "16")]
        [Blocks("h", typeof(BlockOf8), Count = "2")]
        [FinalNorm("ln_f", NormKind.RmsNorm)]
        public partial class RotaryTooWide;
        """)]
    [InlineData("PEFT028", """
        [TransformerBlock(typeof(C), Dim = "Hidden")]
        [Sublayer("mlp", typeof(GoodMlp), Norm = "ln_2")]
        [⟦Sublayer("attn", typeof(RotaryAttention), Norm = "ln_1")]
        public partial class MlpFirst;
        """)]
    [InlineData("PEFT029", """
        [TransformerBlock(typeof(C), Dim = "Hidden", ⟦ParallelResidual = "true")]
        [Sublayer("attn", typeof(RotaryAttention), Norm = "ln")] [Sublayer("mlp", typeof(GoodMlp), Norm = "ln")]
        public partial class AlwaysParallel;
        """)]
    [InlineData("PEFT029", """
        [SelfAttention(typeof(C), Dim = "Hidden", Heads = "Heads", Causal = true, ⟦SlidingWindow = "4")]
        [Projection("qkv", ProjectionRole.Qkv)] [Projection("out", ProjectionRole.Output)]
        public partial class AlwaysWindowed;
        """)]
    [InlineData("PEFT030", """
        [FeedForward(typeof(C), Dim = "Hidden", Inner = "64", Activation = "relu")]
        [Projection("up", ProjectionRole.Up)] [Projection("down", ProjectionRole.Down)]
        public static partial class ⟦StaticMlp;
        """)]
    [InlineData("PEFT030", """
        [FeedForward(typeof(C), Dim = "Hidden", Inner = "64", Activation = "relu")]
        [Projection("up", ProjectionRole.Up)] [Projection("down", ProjectionRole.Down)]
        public abstract partial class ⟦AbstractMlp;
        """)]
    [InlineData("PEFT025", """
        [FeedForward(typeof(C), Dim = "Hidden", Inner = "64", Activation = "relu")]
        [Projection("up", ProjectionRole.Up)] [Projection("down", ProjectionRole.Down)]
        public partial record ⟦RecordMlpInABlock;
        [TransformerBlock(typeof(C), Dim = "Hidden")]
        [Sublayer("mlp", typeof(RecordMlpInABlock), Norm = "ln")]
        public partial class UsesARecord;
        public static class UsesIt { public static object Make(C c) => new UsesARecord(c, 0); }
        """)]
    [InlineData("PEFT026", """
        [FeedForward(typeof(C), Dim = "Hidden", Inner = "64", Activation = "relu")]
        [Projection("up", ProjectionRole.Up)] [Projection("down", ProjectionRole.Down)]
        public partial class ⟦GenericInABlock<T>;
        [TransformerBlock(typeof(C), Dim = "Hidden")]
        [Sublayer("mlp", typeof(GenericInABlock<>), Norm = "ln")]
        public partial class UsesAGeneric;
        """)]
    [InlineData("PEFT001", """
        [FeedForward(typeof(C), Dim = "Hidden", Inner = "64", Activation = "relu")]
        [Projection("up", ProjectionRole.Up)] [Projection("down", ProjectionRole.Down)]
        public class ⟦NotPartialInABlock;
        [TransformerBlock(typeof(C), Dim = "Hidden")]
        [Sublayer("mlp", typeof(NotPartialInABlock), Norm = "ln")]
        public partial class UsesANonPartial;
        """)]
    [InlineData("PEFT011", """
        [ModelConfig] public sealed partial class ⟦ClassConfig { [ConfigKey("hidden")] public int Hidden { get; init; } = 32; }
        [FeedForward(typeof(ClassConfig), Dim = "Hidden", Inner = "64", Activation = "relu")]
        [Projection("up", ProjectionRole.Up)] [Projection("down", ProjectionRole.Down)]
        public partial class OnAClassConfig;
        """)]
    [InlineData("PEFT007", """
        [FeedForward(typeof(C), Dim = "Hidden", Inner = "64", Activation = "relu")]
        [Projection("up", ProjectionRole.Up, ⟦Layout = (WeightLayout)7)] [Projection("down", ProjectionRole.Down)]
        public partial class CastLayout;
        """)]
    [InlineData("PEFT003", """
        [TransformerStack(typeof(C), Dim = "Hidden")]
        [TokenEmbedding("wte", Vocab = "100")]
        [RotaryEmbedding(HeadDim = "8", ⟦RopeType = "llama3")]
        [Blocks("h", typeof(GoodBlock), Count = "2")]
        [FinalNorm("ln_f", NormKind.RmsNorm)]
        public partial class Llama3WithoutFactors;
        [TransformerBlock(typeof(C), Dim = "Hidden")]
        [Sublayer("mlp", typeof(GoodMlp), Norm = "ln")]
        public partial class GoodBlock;
        """)]
    public void InvalidDeclarationReportsExactlyItsDiagnostics(string id, string declaration)
    {
        // ⟦ marks where each expected diagnostic starts: the attribute argument, the attribute or the type's name.
        var expected = new List<int>();
        var text = new System.Text.StringBuilder();
        foreach (var c in declaration)
        {
            if (c == '⟦') expected.Add(Prelude.Length + text.Length);
            else text.Append(c);
        }
        var diagnostics = PeftDiagnostics(text.ToString());

        Assert.All(diagnostics, d => Assert.Equal(id, d.Id));
        Assert.Equal(id == "PEFT028" ? DiagnosticSeverity.Warning : DiagnosticSeverity.Error, Assert.Single(diagnostics.Select(d => d.Severity).Distinct()));
        var source = Prelude + text;
        string At(int position) => source.Substring(position, Math.Min(30, source.Length - position)).Split('\n')[0];
        Assert.Equal(expected.Select(At), diagnostics.Select(d => At(d.Location.SourceSpan.Start)));
    }

    /// <summary>A refused declaration leaves only its PEFT diagnostic: the generated code and the user's code that call
    /// its members (a refused config's FromJson and Load, a broken class's component fields) still compile. A config
    /// with a List&lt;int&gt; key used to add CS0117 (no FromJson, no Load), and a broken block CS1061 for its fields.</summary>
    [Theory]
    [InlineData("PEFT016", """
        [ModelConfig]
        public sealed partial record L
        {
            [ConfigKey("hidden")] public int Hidden { get; init; } = 32;
            [ConfigKey("ids")] public System.Collections.Generic.List<int> Ids { get; init; } = new();
        }
        [FeedForward(typeof(L), Dim = "Hidden", Inner = "64", Activation = "relu")]
        [Projection("up", ProjectionRole.Up)] [Projection("down", ProjectionRole.Down)]
        public partial class LMlp;
        [TransformerBlock(typeof(L), Dim = "Hidden")] [Sublayer("mlp", typeof(LMlp), Norm = "ln")] public partial class LBlock;
        [TransformerStack(typeof(L), Dim = "Hidden")] [TokenEmbedding("wte", Vocab = "64")] [Blocks("h", typeof(LBlock), Count = "2")]
        [FinalNorm("ln_f", NormKind.RmsNorm)] public partial class LBody;
        [CausalLM(typeof(L), ModelType = "l")] [Body("model", typeof(LBody))] [LmHead("lm_head")] public partial class LModel;
        public static class Use
        {
            public static LModel Load(string folder) => LModel.FromPretrained(folder);
            public static L Config(string path) => L.Load(path);
        }
        """)]
    [InlineData("PEFT010", """
        [TransformerBlock(typeof(D), Dim = "Hidden", Norm = NormKind.RmsNorm)]
        [Sublayer("mlp", typeof(GoodMlp), Norm = "post_norm")]
        public partial class OtherConfig;
        [TransformerStack(typeof(C), Dim = "Hidden")] [TokenEmbedding("wte", Vocab = "64")] [PositionEmbedding("wpe", MaxPositions = "16")]
        [Blocks("h", typeof(GoodMlp), Count = "2")] [FinalNorm("ln_f", NormKind.LayerNorm)] public partial class WrongBlocks;
        [SelfAttention(typeof(C), Dim = "30", Heads = "4")] [Projection("qkv", ProjectionRole.Qkv)] [Projection("o", ProjectionRole.Output)]
        public partial class Indivisible;
        public static class Use
        {
            public static object Parts(OtherConfig b) => (b.mlp.up, b.post_norm.weight);
            public static object Stack(WrongBlocks s) => (s.wte, s.wpe, s.ln_f.bias);
            public static object Attention(Indivisible a) => (a.qkv.weight, a.o);
        }
        """)]
    public void RefusedDeclarationsLeaveNoCSharpErrors(string id, string declaration)
    {
        var diagnostics = PeftDiagnostics(declaration);   // asserts there is no C# error
        Assert.Contains(diagnostics, d => d.Id == id);
    }

    /// <summary>Sublayers of a parallel block may share one norm (GPT-J, Falcon); the block gets one norm module.</summary>
    [Fact]
    public void AParallelBlockMayShareOneNorm()
    {
        var (run, _) = GeneratorHarness.Run(("Test.cs", Prelude + """
            [TransformerBlock(typeof(C), Dim = "Hidden", ParallelResidual = "Parallel")]
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
    public void BrokenClassGetsOnlyASkeletonAndValidOnesTheirSource()
    {
        var (run, _) = GeneratorHarness.Run(("Test.cs", Prelude + """
            [FeedForward(typeof(C), Dim = "Hiden", Inner = "64", Activation = "relu")]
            [Projection("up", ProjectionRole.Up)] [Projection("down", ProjectionRole.Down)]
            public partial class Broken;
            """));

        var sources = run.Results.Single().GeneratedSources.ToDictionary(s => s.HintName, s => s.SourceText.ToString());
        // The broken class gets only a skeleton whose members throw, so code that uses it compiles.
        Assert.Contains("Broken's declaration has errors", sources["T.Broken.g.cs"]);
        Assert.DoesNotContain("new global::PeftDsl.Modules.PeftLinear(", sources["T.Broken.g.cs"]);
        Assert.Contains("public readonly global::PeftDsl.Modules.PeftLinear up = null!;", sources["T.Broken.g.cs"]);   // named by the user's code
        var hints = sources.Keys.ToList();
        Assert.Contains("T.GoodMlp.g.cs", hints);
        Assert.Contains("T.C.g.cs", hints);
    }

    private static List<Diagnostic> PeftDiagnostics(string declaration)
    {
        var (run, output) = GeneratorHarness.Run(("Test.cs", Prelude + declaration));
        // A generator exception surfaces as CS8784/CS8785 warnings: the generator must never throw.
        Assert.DoesNotContain(output.GetDiagnostics(), d => d.Id is "CS8784" or "CS8785");
        Assert.All(run.Results, r => Assert.Null(r.Exception));
        var cs = GeneratorHarness.Errors(output);
        Assert.True(cs.Length == 0, string.Join("\n", cs.Select(d => d.Id + " " + d.GetMessage())));
        return run.Diagnostics.Where(d => d.Id.StartsWith("PEFT", StringComparison.Ordinal))
            .OrderBy(d => d.Location.SourceSpan.Start).ToList();
    }
}
