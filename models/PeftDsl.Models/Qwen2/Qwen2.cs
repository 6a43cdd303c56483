using PeftDsl.Dsl;

namespace PeftDsl.Models.Qwen2;

// Qwen2 and Qwen2.5 as transformers' Qwen2ForCausalLM lays them out: Llama's network with biases on the query, key
// and value projections only (o_proj has none).

/// <summary>Qwen2 with its language-modelling head (transformers' <c>Qwen2ForCausalLM</c>): the <c>model</c> body and an <c>lm_head</c>, tied to <c>embed_tokens</c> when <c>tie_word_embeddings</c> (the small Qwen2.5 models).</summary>
[CausalLM(typeof(Qwen2Config), ModelType = "qwen2", IgnoreUnexpectedKeys = [@"rotary_emb\.inv_freq$"])]
[Body("model", typeof(Qwen2Model))]
[LmHead("lm_head", TiedTo = "model.embed_tokens", Tie = nameof(Qwen2Config.TieEmbeddings))]
public partial class Qwen2ForCausalLM;

/// <summary>Qwen2's body (transformers' <c>Qwen2Model</c>): <c>embed_tokens</c>, the rotary position embedding, the decoder <c>layers</c>, and the final RMSNorm <c>norm</c>.</summary>
[TransformerStack(typeof(Qwen2Config), Dim = nameof(Qwen2Config.Hidden))]
[TokenEmbedding("embed_tokens", Vocab = nameof(Qwen2Config.VocabSize))]
[RotaryEmbedding(HeadDim = nameof(Qwen2Config.HeadDim), Theta = nameof(Qwen2Config.RopeTheta), RopeType = nameof(Qwen2Config.RopeType),
    MaxPositions = nameof(Qwen2Config.MaxPositions))]
[Blocks("layers", typeof(Qwen2DecoderLayer), Count = nameof(Qwen2Config.Layers))]
[FinalNorm("norm", NormKind.RmsNorm, Eps = nameof(Qwen2Config.RmsNormEps))]
public partial class Qwen2Model;

/// <summary>One Qwen2 decoder layer (transformers' <c>Qwen2DecoderLayer</c>): pre-RMSNorm self-attention and MLP with residuals.</summary>
[TransformerBlock(typeof(Qwen2Config), Dim = nameof(Qwen2Config.Hidden), Norm = NormKind.RmsNorm, NormEps = nameof(Qwen2Config.RmsNormEps))]
[Sublayer("self_attn", typeof(Qwen2Attention), Norm = "input_layernorm")]
[Sublayer("mlp", typeof(Qwen2Mlp), Norm = "post_attention_layernorm")]
public partial class Qwen2DecoderLayer;

/// <summary>Qwen2's causal grouped-query self-attention (transformers' <c>Qwen2Attention</c>): RoPE on queries and keys; biased <c>q_proj</c>, <c>k_proj</c>, <c>v_proj</c>, bias-free <c>o_proj</c>.</summary>
[SelfAttention(typeof(Qwen2Config), Dim = nameof(Qwen2Config.Hidden), Heads = nameof(Qwen2Config.Heads),
    KvHeads = nameof(Qwen2Config.KvHeads), HeadDim = nameof(Qwen2Config.HeadDim), Causal = true, Rotary = true,
    Dropout = nameof(Qwen2Config.AttentionDropout))]
[Projection("q_proj", ProjectionRole.Query, Bias = nameof(Qwen2Config.QkvBias))]
[Projection("k_proj", ProjectionRole.Key, Bias = nameof(Qwen2Config.QkvBias))]
[Projection("v_proj", ProjectionRole.Value, Bias = nameof(Qwen2Config.QkvBias))]
[Projection("o_proj", ProjectionRole.Output)]
public partial class Qwen2Attention;

/// <summary>Qwen2's SwiGLU MLP (transformers' <c>Qwen2MLP</c>): <c>down_proj</c>(act(<c>gate_proj</c>(x)) × <c>up_proj</c>(x)), without biases.</summary>
[FeedForward(typeof(Qwen2Config), Dim = nameof(Qwen2Config.Hidden), Inner = nameof(Qwen2Config.Intermediate), Activation = nameof(Qwen2Config.HiddenAct))]
[Projection("gate_proj", ProjectionRole.Gate)]
[Projection("up_proj", ProjectionRole.Up)]
[Projection("down_proj", ProjectionRole.Down)]
public partial class Qwen2Mlp;
