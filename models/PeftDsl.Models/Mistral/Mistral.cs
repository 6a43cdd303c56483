using PeftDsl.Dsl;

namespace PeftDsl.Models.Mistral;

// Mistral as transformers' MistralForCausalLM lays it out: Llama's network with sliding-window attention.

/// <summary>Mistral with its language-modelling head (transformers' <c>MistralForCausalLM</c>): the <c>model</c> body and an <c>lm_head</c>, tied to <c>embed_tokens</c> when <c>tie_word_embeddings</c>.</summary>
[CausalLM(typeof(MistralConfig), ModelType = "mistral", IgnoreUnexpectedKeys = [@"rotary_emb\.inv_freq$"])]
[Body("model", typeof(MistralModel))]
[LmHead("lm_head", TiedTo = "model.embed_tokens", Tie = nameof(MistralConfig.TieEmbeddings))]
public partial class MistralForCausalLM;

/// <summary>Mistral's body (transformers' <c>MistralModel</c>): <c>embed_tokens</c>, the rotary position embedding, the decoder <c>layers</c>, and the final RMSNorm <c>norm</c>.</summary>
[TransformerStack(typeof(MistralConfig), Dim = nameof(MistralConfig.Hidden))]
[TokenEmbedding("embed_tokens", Vocab = nameof(MistralConfig.VocabSize))]
[RotaryEmbedding(HeadDim = nameof(MistralConfig.HeadDim), Theta = nameof(MistralConfig.RopeTheta), RopeType = nameof(MistralConfig.RopeType),
    MaxPositions = nameof(MistralConfig.MaxPositions))]
[Blocks("layers", typeof(MistralDecoderLayer), Count = nameof(MistralConfig.Layers))]
[FinalNorm("norm", NormKind.RmsNorm, Eps = nameof(MistralConfig.RmsNormEps))]
public partial class MistralModel;

/// <summary>One Mistral decoder layer (transformers' <c>MistralDecoderLayer</c>): pre-RMSNorm self-attention and MLP with residuals.</summary>
[TransformerBlock(typeof(MistralConfig), Dim = nameof(MistralConfig.Hidden), Norm = NormKind.RmsNorm, NormEps = nameof(MistralConfig.RmsNormEps))]
[Sublayer("self_attn", typeof(MistralAttention), Norm = "input_layernorm")]
[Sublayer("mlp", typeof(MistralMlp), Norm = "post_attention_layernorm")]
public partial class MistralDecoderLayer;

/// <summary>Mistral's causal grouped-query self-attention (transformers' <c>MistralAttention</c>): RoPE on queries and keys, an optional sliding window; bias-free <c>q_proj</c>, <c>k_proj</c>, <c>v_proj</c>, <c>o_proj</c>.</summary>
[SelfAttention(typeof(MistralConfig), Dim = nameof(MistralConfig.Hidden), Heads = nameof(MistralConfig.Heads),
    KvHeads = nameof(MistralConfig.KvHeads), HeadDim = nameof(MistralConfig.HeadDim), Causal = true, Rotary = true,
    SlidingWindow = nameof(MistralConfig.SlidingWindow), Dropout = nameof(MistralConfig.AttentionDropout))]
[Projection("q_proj", ProjectionRole.Query)]
[Projection("k_proj", ProjectionRole.Key)]
[Projection("v_proj", ProjectionRole.Value)]
[Projection("o_proj", ProjectionRole.Output)]
public partial class MistralAttention;

/// <summary>Mistral's SwiGLU MLP (transformers' <c>MistralMLP</c>): <c>down_proj</c>(act(<c>gate_proj</c>(x)) × <c>up_proj</c>(x)), without biases.</summary>
[FeedForward(typeof(MistralConfig), Dim = nameof(MistralConfig.Hidden), Inner = nameof(MistralConfig.Intermediate), Activation = nameof(MistralConfig.HiddenAct))]
[Projection("gate_proj", ProjectionRole.Gate)]
[Projection("up_proj", ProjectionRole.Up)]
[Projection("down_proj", ProjectionRole.Down)]
public partial class MistralMlp;
