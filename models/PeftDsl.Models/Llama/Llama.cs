using PeftDsl.Dsl;

namespace PeftDsl.Models.Llama;

// Llama as transformers' LlamaForCausalLM lays it out: grouped-query attention, RoPE, RMSNorm, SwiGLU.

/// <summary>Llama with its language-modelling head (transformers' <c>LlamaForCausalLM</c>): the <c>model</c> body and an <c>lm_head</c>, tied to <c>embed_tokens</c> when <c>tie_word_embeddings</c>.</summary>
[CausalLM(typeof(LlamaConfig), ModelType = "llama",
    // Some exported checkpoints still carry the non-persistent RoPE buffer.
    IgnoreUnexpectedKeys = [@"rotary_emb\.inv_freq$"])]
[Body("model", typeof(LlamaModel))]
[LmHead("lm_head", TiedTo = "model.embed_tokens", Tie = nameof(LlamaConfig.TieEmbeddings))]
public partial class LlamaForCausalLM;

/// <summary>Llama's body (transformers' <c>LlamaModel</c>): <c>embed_tokens</c>, the rotary position embedding (with Llama 3 scaling), the decoder <c>layers</c>, and the final RMSNorm <c>norm</c>.</summary>
[TransformerStack(typeof(LlamaConfig), Dim = nameof(LlamaConfig.Hidden))]
[TokenEmbedding("embed_tokens", Vocab = nameof(LlamaConfig.VocabSize))]
[RotaryEmbedding(HeadDim = nameof(LlamaConfig.HeadDim), Theta = nameof(LlamaConfig.RopeTheta), RopeType = nameof(LlamaConfig.RopeType),
    ScalingFactor = nameof(LlamaConfig.RopeFactor), LowFreqFactor = nameof(LlamaConfig.RopeLowFreqFactor),
    HighFreqFactor = nameof(LlamaConfig.RopeHighFreqFactor), OriginalMaxPositions = nameof(LlamaConfig.RopeOriginalMaxPositions),
    MaxPositions = nameof(LlamaConfig.MaxPositions))]
[Blocks("layers", typeof(LlamaDecoderLayer), Count = nameof(LlamaConfig.Layers))]
[FinalNorm("norm", NormKind.RmsNorm, Eps = nameof(LlamaConfig.RmsNormEps))]
public partial class LlamaModel;

/// <summary>One Llama decoder layer (transformers' <c>LlamaDecoderLayer</c>): pre-RMSNorm self-attention and MLP with residuals.</summary>
[TransformerBlock(typeof(LlamaConfig), Dim = nameof(LlamaConfig.Hidden), Norm = NormKind.RmsNorm, NormEps = nameof(LlamaConfig.RmsNormEps))]
[Sublayer("self_attn", typeof(LlamaAttention), Norm = "input_layernorm")]
[Sublayer("mlp", typeof(LlamaMlp), Norm = "post_attention_layernorm")]
public partial class LlamaDecoderLayer;

/// <summary>Llama's causal grouped-query self-attention (transformers' <c>LlamaAttention</c>): RoPE on queries and keys; <c>q_proj</c>, <c>k_proj</c>, <c>v_proj</c>, <c>o_proj</c>, biased when <c>attention_bias</c>.</summary>
[SelfAttention(typeof(LlamaConfig), Dim = nameof(LlamaConfig.Hidden), Heads = nameof(LlamaConfig.Heads),
    KvHeads = nameof(LlamaConfig.KvHeads), HeadDim = nameof(LlamaConfig.HeadDim), Causal = true, Rotary = true,
    Dropout = nameof(LlamaConfig.AttentionDropout))]
[Projection("q_proj", ProjectionRole.Query, Bias = nameof(LlamaConfig.AttentionBias))]
[Projection("k_proj", ProjectionRole.Key, Bias = nameof(LlamaConfig.AttentionBias))]
[Projection("v_proj", ProjectionRole.Value, Bias = nameof(LlamaConfig.AttentionBias))]
[Projection("o_proj", ProjectionRole.Output, Bias = nameof(LlamaConfig.AttentionBias))]
public partial class LlamaAttention;

/// <summary>Llama's SwiGLU MLP (transformers' <c>LlamaMLP</c>): <c>down_proj</c>(act(<c>gate_proj</c>(x)) × <c>up_proj</c>(x)), biased when <c>mlp_bias</c>.</summary>
[FeedForward(typeof(LlamaConfig), Dim = nameof(LlamaConfig.Hidden), Inner = nameof(LlamaConfig.Intermediate), Activation = nameof(LlamaConfig.HiddenAct))]
[Projection("gate_proj", ProjectionRole.Gate, Bias = nameof(LlamaConfig.MlpBias))]
[Projection("up_proj", ProjectionRole.Up, Bias = nameof(LlamaConfig.MlpBias))]
[Projection("down_proj", ProjectionRole.Down, Bias = nameof(LlamaConfig.MlpBias))]
public partial class LlamaMlp;
