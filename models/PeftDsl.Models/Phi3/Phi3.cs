using PeftDsl.Dsl;

namespace PeftDsl.Models.Phi3;

// Phi-3 as transformers' Phi3ForCausalLM lays it out: Llama's pre-RMSNorm block with a fused qkv_proj ([q | k | v]) and
// a fused gate_up_proj ([gate | up]), partial rotary where partial_rotary_factor says so, longrope scaling, a
// sliding window, and resid_pdrop on both sublayers' outputs.

/// <summary>Phi-3 with its language-modelling head (transformers' <c>Phi3ForCausalLM</c>; also Phi-3.5-mini and
/// Phi-4-mini): the <c>model</c> body and an <c>lm_head</c>, tied when <c>tie_word_embeddings</c>.</summary>
[CausalLM(typeof(Phi3Config), ModelType = "phi3", IgnoreUnexpectedKeys = [@"rotary_emb\.\w*inv_freq$"])]
[Body("model", typeof(Phi3Model))]
[LmHead("lm_head", TiedTo = "model.embed_tokens", Tie = nameof(Phi3Config.TieEmbeddings))]
public partial class Phi3ForCausalLM;

/// <summary>Phi-3's body (transformers' <c>Phi3Model</c>): <c>embed_tokens</c>, the rotary embedding, the decoder
/// <c>layers</c>, and the final RMSNorm <c>norm</c>.</summary>
[TransformerStack(typeof(Phi3Config), Dim = nameof(Phi3Config.Hidden))]
[TokenEmbedding("embed_tokens", Vocab = nameof(Phi3Config.VocabSize))]
[RotaryEmbedding(HeadDim = nameof(Phi3Config.HeadDim), Theta = nameof(Phi3Config.RopeTheta), RopeType = nameof(Phi3Config.RopeType),
    Fraction = nameof(Phi3Config.RotaryFraction), ScalingFactor = nameof(Phi3Config.RopeFactor),
    OriginalMaxPositions = nameof(Phi3Config.OriginalMaxPositions), ShortFactor = nameof(Phi3Config.ShortFactor),
    LongFactor = nameof(Phi3Config.LongFactor), AttentionFactor = nameof(Phi3Config.RopeAttentionFactor), MaxPositions = nameof(Phi3Config.MaxPositions))]
[Blocks("layers", typeof(Phi3DecoderLayer), Count = nameof(Phi3Config.Layers))]
[FinalNorm("norm", NormKind.RmsNorm, Eps = nameof(Phi3Config.RmsNormEps))]
public partial class Phi3Model;

/// <summary>One Phi-3 decoder layer (transformers' <c>Phi3DecoderLayer</c>): pre-RMSNorm self-attention and MLP, each
/// output through <c>resid_pdrop</c> before the residual add.</summary>
[TransformerBlock(typeof(Phi3Config), Dim = nameof(Phi3Config.Hidden), Norm = NormKind.RmsNorm, NormEps = nameof(Phi3Config.RmsNormEps))]
[Sublayer("self_attn", typeof(Phi3Attention), Norm = "input_layernorm", Dropout = nameof(Phi3Config.ResidDropout))]
[Sublayer("mlp", typeof(Phi3Mlp), Norm = "post_attention_layernorm", Dropout = nameof(Phi3Config.ResidDropout))]
public partial class Phi3DecoderLayer;

/// <summary>Phi-3's attention (transformers' <c>Phi3Attention</c>): the fused <c>qkv_proj</c> ([q | k | v]), RoPE, and
/// <c>o_proj</c>; no biases.</summary>
[SelfAttention(typeof(Phi3Config), Dim = nameof(Phi3Config.Hidden), Heads = nameof(Phi3Config.Heads),
    KvHeads = nameof(Phi3Config.KvHeads), HeadDim = nameof(Phi3Config.HeadDim), Causal = true, Rotary = true,
    SlidingWindow = nameof(Phi3Config.SlidingWindow), Dropout = nameof(Phi3Config.AttentionDropout))]
[Projection("qkv_proj", ProjectionRole.Qkv)]
[Projection("o_proj", ProjectionRole.Output)]
public partial class Phi3Attention;

/// <summary>Phi-3's MLP (transformers' <c>Phi3MLP</c>): <c>down_proj</c>(act(gate) × up), gate and up the two halves
/// of the fused <c>gate_up_proj</c>.</summary>
[FeedForward(typeof(Phi3Config), Dim = nameof(Phi3Config.Hidden), Inner = nameof(Phi3Config.Intermediate), Activation = nameof(Phi3Config.HiddenAct))]
[Projection("gate_up_proj", ProjectionRole.GateUp)]
[Projection("down_proj", ProjectionRole.Down)]
public partial class Phi3Mlp;
