using PeftDsl.Dsl;

namespace PeftDsl.Models.Gemma3;

// Gemma 3's text model as transformers' Gemma3ForCausalLM lays it out: Gemma 2's block (four (1 + weight) RMSNorms,
// query_pre_attn_scalar) without attention soft-capping, with (1 + weight) q_norm/k_norm before RoPE, five sliding
// layers to one global, the sliding layers on their own unscaled rotary tables, and the embedding module scaling its
// own output (so virtual tokens enter unscaled, as with peft on transformers).

/// <summary>Gemma 3's text model with its language-modelling head (transformers' <c>Gemma3ForCausalLM</c>,
/// <c>gemma3_text</c>): the <c>model</c> body and an <c>lm_head</c> tied to <c>embed_tokens</c>.</summary>
[CausalLM(typeof(Gemma3Config), ModelType = "gemma3_text", IgnoreUnexpectedKeys = [@"rotary_emb(_local)?\.\w*inv_freq$"])]
[Body("model", typeof(Gemma3Model))]
[LmHead("lm_head", TiedTo = "model.embed_tokens", Tie = nameof(Gemma3Config.TieEmbeddings), Softcap = nameof(Gemma3Config.FinalSoftcap))]
public partial class Gemma3ForCausalLM;

/// <summary>Gemma 3's text body (transformers' <c>Gemma3TextModel</c>): the scaled <c>embed_tokens</c>, global and local
/// rotary tables, the decoder <c>layers</c>, and the final norm <c>norm</c>.</summary>
[TransformerStack(typeof(Gemma3Config), Dim = nameof(Gemma3Config.Hidden))]
[TokenEmbedding("embed_tokens", Vocab = nameof(Gemma3Config.VocabSize), Scale = EmbeddingScale.Tokens)]
[RotaryEmbedding(HeadDim = nameof(Gemma3Config.HeadDim), Theta = nameof(Gemma3Config.RopeTheta), RopeType = nameof(Gemma3Config.RopeType),
    ScalingFactor = nameof(Gemma3Config.RopeFactor), LocalTheta = nameof(Gemma3Config.LocalRopeTheta), MaxPositions = nameof(Gemma3Config.MaxPositions))]
[Blocks("layers", typeof(Gemma3DecoderLayer), Count = nameof(Gemma3Config.Layers))]
[FinalNorm("norm", NormKind.GemmaRmsNorm, Eps = nameof(Gemma3Config.RmsNormEps))]
public partial class Gemma3Model;

/// <summary>One Gemma 3 decoder layer (transformers' <c>Gemma3DecoderLayer</c>): each sublayer between a pre-norm and a
/// post-norm, then the residual add.</summary>
[TransformerBlock(typeof(Gemma3Config), Dim = nameof(Gemma3Config.Hidden), Norm = NormKind.GemmaRmsNorm, NormEps = nameof(Gemma3Config.RmsNormEps))]
[Sublayer("self_attn", typeof(Gemma3Attention), Norm = "input_layernorm", PostNorm = "post_attention_layernorm")]
[Sublayer("mlp", typeof(Gemma3Mlp), Norm = "pre_feedforward_layernorm", PostNorm = "post_feedforward_layernorm")]
public partial class Gemma3DecoderLayer;

/// <summary>Gemma 3's grouped-query self-attention (transformers' <c>Gemma3Attention</c>): (1 + weight) <c>q_norm</c> and
/// <c>k_norm</c> over each head, RoPE (local tables on sliding layers), scores scaled by <c>query_pre_attn_scalar</c>^-0.5,
/// a window on the layers <c>layer_types</c> marks sliding.</summary>
[SelfAttention(typeof(Gemma3Config), Dim = nameof(Gemma3Config.Hidden), Heads = nameof(Gemma3Config.Heads),
    KvHeads = nameof(Gemma3Config.KvHeads), HeadDim = nameof(Gemma3Config.HeadDim), Causal = true, Rotary = true,
    Dropout = nameof(Gemma3Config.AttentionDropout), QueryScalar = nameof(Gemma3Config.QueryPreAttnScalar),
    SlidingWindow = nameof(Gemma3Config.SlidingWindow), LayerTypes = nameof(Gemma3Config.LayerTypes),
    QueryNorm = "q_norm", KeyNorm = "k_norm", HeadNormEps = nameof(Gemma3Config.RmsNormEps), HeadNormKind = NormKind.GemmaRmsNorm)]
[Projection("q_proj", ProjectionRole.Query, Bias = nameof(Gemma3Config.AttentionBias))]
[Projection("k_proj", ProjectionRole.Key, Bias = nameof(Gemma3Config.AttentionBias))]
[Projection("v_proj", ProjectionRole.Value, Bias = nameof(Gemma3Config.AttentionBias))]
[Projection("o_proj", ProjectionRole.Output, Bias = nameof(Gemma3Config.AttentionBias))]
public partial class Gemma3Attention;

/// <summary>Gemma 3's gated MLP (transformers' <c>Gemma3MLP</c>): <c>down_proj</c>(act(<c>gate_proj</c>(x)) × <c>up_proj</c>(x)).</summary>
[FeedForward(typeof(Gemma3Config), Dim = nameof(Gemma3Config.Hidden), Inner = nameof(Gemma3Config.Intermediate), Activation = nameof(Gemma3Config.HiddenActivation))]
[Projection("gate_proj", ProjectionRole.Gate)]
[Projection("up_proj", ProjectionRole.Up)]
[Projection("down_proj", ProjectionRole.Down)]
public partial class Gemma3Mlp;
