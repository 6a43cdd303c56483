using PeftDsl.Dsl;

namespace PeftDsl.Tests.Architectures;

// A user's declaration no stock model covers: one norm shared by a parallel attention and MLP (GPT-J, Falcon), a
// fused QKV interleaved per key/value group with grouped-query attention (Falcon's new layout), and rotary on half of
// each head. HandComposedTests compares it with the same network written in plain TorchSharp ops.

[ModelConfig]
public sealed partial record ParallelConfig
{
    [ConfigKey("vocab_size")] public required int VocabSize { get; init; }
    [ConfigKey("hidden_size")] public required int Hidden { get; init; }
    [ConfigKey("num_hidden_layers")] public required int Layers { get; init; }
    [ConfigKey("num_attention_heads")] public required int Heads { get; init; }
    [ConfigKey("num_kv_heads")] public required int KvHeads { get; init; }
    [ConfigKey("partial_rotary_factor", "rotary_pct")] public double RotaryFraction { get; init; } = 0.5;
    [ConfigKey("sliding_window")] public int SlidingWindow { get; init; }
    // Bound, not the literal "true": a checkpoint whose config says use_parallel_residual: false is then refused.
    [ConfigKey("use_parallel_residual", Computes = new object[] { true })] public bool ParallelResidual { get; init; } = true;

    public int HeadDim => Hidden / Heads;

    public int Inner => 4 * Hidden;
}

[CausalLM(typeof(ParallelConfig), ModelType = "parallel_test")]
[Body("transformer", typeof(ParallelModel))]
[LmHead("lm_head")]
public partial class ParallelForCausalLM;

[TransformerStack(typeof(ParallelConfig), Dim = nameof(ParallelConfig.Hidden))]
[TokenEmbedding("word_embeddings", Vocab = nameof(ParallelConfig.VocabSize))]
[RotaryEmbedding(HeadDim = nameof(ParallelConfig.HeadDim), Fraction = nameof(ParallelConfig.RotaryFraction))]
[Blocks("h", typeof(ParallelBlock), Count = nameof(ParallelConfig.Layers))]
[FinalNorm("ln_f", NormKind.LayerNorm)]
public partial class ParallelModel;

[TransformerBlock(typeof(ParallelConfig), Dim = nameof(ParallelConfig.Hidden), ParallelResidual = nameof(ParallelConfig.ParallelResidual))]
[Sublayer("self_attention", typeof(ParallelAttention), Norm = "input_layernorm")]
[Sublayer("mlp", typeof(ParallelMlp), Norm = "input_layernorm")]
public partial class ParallelBlock;

[SelfAttention(typeof(ParallelConfig), Dim = nameof(ParallelConfig.Hidden), Heads = nameof(ParallelConfig.Heads),
    KvHeads = nameof(ParallelConfig.KvHeads), Causal = true, Rotary = true, SlidingWindow = nameof(ParallelConfig.SlidingWindow))]
[Projection("query_key_value", ProjectionRole.Qkv, QkvLayout = QkvLayout.Interleaved)]
[Projection("dense", ProjectionRole.Output)]
public partial class ParallelAttention;

[FeedForward(typeof(ParallelConfig), Dim = nameof(ParallelConfig.Hidden), Inner = nameof(ParallelConfig.Inner), Activation = "gelu")]
[Projection("dense_h_to_4h", ProjectionRole.Up)]
[Projection("dense_4h_to_h", ProjectionRole.Down)]
public partial class ParallelMlp;
