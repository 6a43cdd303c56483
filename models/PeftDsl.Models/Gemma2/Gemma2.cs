using PeftDsl.Dsl;

namespace PeftDsl.Models.Gemma2;

// Gemma 2 as transformers' Gemma2ForCausalLM lays it out: embeddings scaled by √hidden (virtual tokens included, since
// the model scales whatever enters it), four (1 + weight) RMSNorms per block, attention scaled by
// query_pre_attn_scalar^-0.5 and soft-capped, sliding-window and global layers alternating, and soft-capped logits.

/// <summary>Gemma 2 with its language-modelling head (transformers' <c>Gemma2ForCausalLM</c>): the <c>model</c> body and an
/// <c>lm_head</c> tied to <c>embed_tokens</c>, whose logits are soft-capped by <c>final_logit_softcapping</c>.</summary>
[CausalLM(typeof(Gemma2Config), ModelType = "gemma2", IgnoreUnexpectedKeys = [@"rotary_emb\.inv_freq$"])]
[Body("model", typeof(Gemma2Model))]
[LmHead("lm_head", TiedTo = "model.embed_tokens", Tie = nameof(Gemma2Config.TieEmbeddings), Softcap = nameof(Gemma2Config.FinalSoftcap))]
public partial class Gemma2ForCausalLM;

/// <summary>Gemma 2's body (transformers' <c>Gemma2Model</c>): <c>embed_tokens</c> (its output, and any virtual tokens,
/// scaled by √hidden), the rotary embedding, the decoder <c>layers</c>, and the final norm <c>norm</c>.</summary>
[TransformerStack(typeof(Gemma2Config), Dim = nameof(Gemma2Config.Hidden))]
[TokenEmbedding("embed_tokens", Vocab = nameof(Gemma2Config.VocabSize), Scale = EmbeddingScale.Inputs)]
[RotaryEmbedding(HeadDim = nameof(Gemma2Config.HeadDim), Theta = nameof(Gemma2Config.RopeTheta), RopeType = nameof(Gemma2Config.RopeType),
    ScalingFactor = nameof(Gemma2Config.RopeFactor), MaxPositions = nameof(Gemma2Config.MaxPositions))]
[Blocks("layers", typeof(Gemma2DecoderLayer), Count = nameof(Gemma2Config.Layers))]
[FinalNorm("norm", NormKind.GemmaRmsNorm, Eps = nameof(Gemma2Config.RmsNormEps))]
public partial class Gemma2Model;

/// <summary>One Gemma 2 decoder layer (transformers' <c>Gemma2DecoderLayer</c>): each sublayer between a pre-norm and a
/// post-norm, then the residual add.</summary>
[TransformerBlock(typeof(Gemma2Config), Dim = nameof(Gemma2Config.Hidden), Norm = NormKind.GemmaRmsNorm, NormEps = nameof(Gemma2Config.RmsNormEps))]
[Sublayer("self_attn", typeof(Gemma2Attention), Norm = "input_layernorm", PostNorm = "post_attention_layernorm")]
[Sublayer("mlp", typeof(Gemma2Mlp), Norm = "pre_feedforward_layernorm", PostNorm = "post_feedforward_layernorm")]
public partial class Gemma2DecoderLayer;

/// <summary>Gemma 2's grouped-query self-attention (transformers' <c>Gemma2Attention</c>): RoPE, scores scaled by
/// <c>query_pre_attn_scalar</c>^-0.5 and soft-capped by <c>attn_logit_softcapping</c>, a window on the layers
/// <c>layer_types</c> marks sliding.</summary>
[SelfAttention(typeof(Gemma2Config), Dim = nameof(Gemma2Config.Hidden), Heads = nameof(Gemma2Config.Heads),
    KvHeads = nameof(Gemma2Config.KvHeads), HeadDim = nameof(Gemma2Config.HeadDim), Causal = true, Rotary = true,
    Dropout = nameof(Gemma2Config.AttentionDropout), QueryScalar = nameof(Gemma2Config.QueryPreAttnScalar),
    Softcap = nameof(Gemma2Config.AttnSoftcap), SlidingWindow = nameof(Gemma2Config.SlidingWindow), LayerTypes = nameof(Gemma2Config.LayerTypes))]
[Projection("q_proj", ProjectionRole.Query, Bias = nameof(Gemma2Config.AttentionBias))]
[Projection("k_proj", ProjectionRole.Key, Bias = nameof(Gemma2Config.AttentionBias))]
[Projection("v_proj", ProjectionRole.Value, Bias = nameof(Gemma2Config.AttentionBias))]
[Projection("o_proj", ProjectionRole.Output, Bias = nameof(Gemma2Config.AttentionBias))]
public partial class Gemma2Attention;

/// <summary>Gemma 2's gated MLP (transformers' <c>Gemma2MLP</c>): <c>down_proj</c>(act(<c>gate_proj</c>(x)) × <c>up_proj</c>(x)),
/// act = <c>hidden_activation</c> (GeGLU with the tanh GELU).</summary>
[FeedForward(typeof(Gemma2Config), Dim = nameof(Gemma2Config.Hidden), Inner = nameof(Gemma2Config.Intermediate), Activation = nameof(Gemma2Config.HiddenActivation))]
[Projection("gate_proj", ProjectionRole.Gate)]
[Projection("up_proj", ProjectionRole.Up)]
[Projection("down_proj", ProjectionRole.Down)]
public partial class Gemma2Mlp;
