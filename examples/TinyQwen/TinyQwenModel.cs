using PeftDsl.Dsl;

namespace TinyQwen;

/// <summary>
/// A Qwen2-style variant declared by a consumer: biases on q/k/v but not on o, grouped-query attention,
/// RoPE with θ = 1e6, RMSNorm, SwiGLU and tied embeddings. The defaults make it runnable without a checkpoint.
/// </summary>
[ModelConfig]
public sealed partial record TinyQwenConfig
{
    [ConfigKey("vocab_size")] public int VocabSize { get; init; } = 1000;
    [ConfigKey("hidden_size")] public int Hidden { get; init; } = 64;
    [ConfigKey("intermediate_size")] public int Intermediate { get; init; } = 176;
    [ConfigKey("num_hidden_layers")] public int Layers { get; init; } = 2;
    [ConfigKey("num_attention_heads")] public int Heads { get; init; } = 8;
    [ConfigKey("num_key_value_heads")] public int KvHeads { get; init; } = 2;
    [ConfigKey("rope_theta")] public double RopeTheta { get; init; } = 1_000_000;
    [ConfigKey("rms_norm_eps")] public double Eps { get; init; } = 1e-6;

    public int HeadDim => Hidden / Heads;
}

[CausalLM(typeof(TinyQwenConfig), ModelType = "qwen2")]
[Body("model", typeof(TinyQwenModel))]
[LmHead("lm_head", TiedTo = "model.embed_tokens")]
public partial class TinyQwenForCausalLM;

[TransformerStack(typeof(TinyQwenConfig), Dim = nameof(TinyQwenConfig.Hidden))]
[TokenEmbedding("embed_tokens", Vocab = nameof(TinyQwenConfig.VocabSize))]
[RotaryEmbedding(HeadDim = nameof(TinyQwenConfig.HeadDim), Theta = nameof(TinyQwenConfig.RopeTheta))]
[Blocks("layers", typeof(TinyQwenLayer), Count = nameof(TinyQwenConfig.Layers))]
[FinalNorm("norm", NormKind.RmsNorm, Eps = nameof(TinyQwenConfig.Eps))]
public partial class TinyQwenModel;

[TransformerBlock(typeof(TinyQwenConfig), Dim = nameof(TinyQwenConfig.Hidden), Norm = NormKind.RmsNorm, NormEps = nameof(TinyQwenConfig.Eps))]
[Sublayer("self_attn", typeof(TinyQwenAttention), Norm = "input_layernorm")]
[Sublayer("mlp", typeof(TinyQwenMlp), Norm = "post_attention_layernorm")]
public partial class TinyQwenLayer;

[SelfAttention(typeof(TinyQwenConfig), Dim = nameof(TinyQwenConfig.Hidden), Heads = nameof(TinyQwenConfig.Heads),
    KvHeads = nameof(TinyQwenConfig.KvHeads), Causal = true, Rotary = true)]
[Projection("q_proj", ProjectionRole.Query, Bias = "true")]
[Projection("k_proj", ProjectionRole.Key, Bias = "true")]
[Projection("v_proj", ProjectionRole.Value, Bias = "true")]
[Projection("o_proj", ProjectionRole.Output)]
public partial class TinyQwenAttention;

[FeedForward(typeof(TinyQwenConfig), Dim = nameof(TinyQwenConfig.Hidden), Inner = nameof(TinyQwenConfig.Intermediate), Activation = "silu")]
[Projection("gate_proj", ProjectionRole.Gate)]
[Projection("up_proj", ProjectionRole.Up)]
[Projection("down_proj", ProjectionRole.Down)]
public partial class TinyQwenMlp;
