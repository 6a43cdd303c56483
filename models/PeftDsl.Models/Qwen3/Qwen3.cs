using PeftDsl.Dsl;

namespace PeftDsl.Models.Qwen3;

// Qwen3 as transformers' Qwen3ForCausalLM lays it out: Llama's network with a per-head RMSNorm on queries and keys
// before RoPE (q_norm, k_norm), and projection biases only when attention_bias says so.

/// <summary>Qwen3 with its language-modelling head (transformers' <c>Qwen3ForCausalLM</c>): the <c>model</c> body and an <c>lm_head</c>, tied to <c>embed_tokens</c> when <c>tie_word_embeddings</c> (the small Qwen3 models).</summary>
[CausalLM(typeof(Qwen3Config), ModelType = "qwen3", IgnoreUnexpectedKeys = [@"rotary_emb\.inv_freq$"])]
[Body("model", typeof(Qwen3Model))]
[LmHead("lm_head", TiedTo = "model.embed_tokens", Tie = nameof(Qwen3Config.TieEmbeddings))]
public partial class Qwen3ForCausalLM;

/// <summary>Qwen3's body (transformers' <c>Qwen3Model</c>): <c>embed_tokens</c>, the rotary position embedding, the decoder <c>layers</c>, and the final RMSNorm <c>norm</c>.</summary>
[TransformerStack(typeof(Qwen3Config), Dim = nameof(Qwen3Config.Hidden))]
[TokenEmbedding("embed_tokens", Vocab = nameof(Qwen3Config.VocabSize))]
[RotaryEmbedding(HeadDim = nameof(Qwen3Config.HeadDim), Theta = nameof(Qwen3Config.RopeTheta), RopeType = nameof(Qwen3Config.RopeType),
    MaxPositions = nameof(Qwen3Config.MaxPositions))]
[Blocks("layers", typeof(Qwen3DecoderLayer), Count = nameof(Qwen3Config.Layers))]
[FinalNorm("norm", NormKind.RmsNorm, Eps = nameof(Qwen3Config.RmsNormEps))]
public partial class Qwen3Model;

/// <summary>One Qwen3 decoder layer (transformers' <c>Qwen3DecoderLayer</c>): pre-RMSNorm self-attention and MLP with residuals.</summary>
[TransformerBlock(typeof(Qwen3Config), Dim = nameof(Qwen3Config.Hidden), Norm = NormKind.RmsNorm, NormEps = nameof(Qwen3Config.RmsNormEps))]
[Sublayer("self_attn", typeof(Qwen3Attention), Norm = "input_layernorm")]
[Sublayer("mlp", typeof(Qwen3Mlp), Norm = "post_attention_layernorm")]
public partial class Qwen3DecoderLayer;

/// <summary>Qwen3's causal grouped-query self-attention (transformers' <c>Qwen3Attention</c>): <c>q_norm</c> and <c>k_norm</c> over each head, then RoPE; <c>q_proj</c>, <c>k_proj</c>, <c>v_proj</c>, <c>o_proj</c>, biased when <c>attention_bias</c>.</summary>
[SelfAttention(typeof(Qwen3Config), Dim = nameof(Qwen3Config.Hidden), Heads = nameof(Qwen3Config.Heads),
    KvHeads = nameof(Qwen3Config.KvHeads), HeadDim = nameof(Qwen3Config.HeadDim), Causal = true, Rotary = true,
    Dropout = nameof(Qwen3Config.AttentionDropout), QueryNorm = "q_norm", KeyNorm = "k_norm", HeadNormEps = nameof(Qwen3Config.RmsNormEps))]
[Projection("q_proj", ProjectionRole.Query, Bias = nameof(Qwen3Config.AttentionBias))]
[Projection("k_proj", ProjectionRole.Key, Bias = nameof(Qwen3Config.AttentionBias))]
[Projection("v_proj", ProjectionRole.Value, Bias = nameof(Qwen3Config.AttentionBias))]
[Projection("o_proj", ProjectionRole.Output, Bias = nameof(Qwen3Config.AttentionBias))]
public partial class Qwen3Attention;

/// <summary>Qwen3's SwiGLU MLP (transformers' <c>Qwen3MLP</c>): <c>down_proj</c>(act(<c>gate_proj</c>(x)) × <c>up_proj</c>(x)), without biases.</summary>
[FeedForward(typeof(Qwen3Config), Dim = nameof(Qwen3Config.Hidden), Inner = nameof(Qwen3Config.Intermediate), Activation = nameof(Qwen3Config.HiddenAct))]
[Projection("gate_proj", ProjectionRole.Gate)]
[Projection("up_proj", ProjectionRole.Up)]
[Projection("down_proj", ProjectionRole.Down)]
public partial class Qwen3Mlp;
