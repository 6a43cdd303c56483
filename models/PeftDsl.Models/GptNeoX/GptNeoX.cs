using PeftDsl.Dsl;

namespace PeftDsl.Models.GptNeoX;

// GPT-NeoX (Pythia) as transformers' GPTNeoXForCausalLM lays it out: a fused query_key_value ordered per head,
// rotary on a fraction of each head, and (by default) a parallel residual with two norms.

/// <summary>GPT-NeoX (Pythia) with its language-modelling head (transformers' <c>GPTNeoXForCausalLM</c>): the <c>gpt_neox</c> body and the <c>embed_out</c> head, tied to <c>embed_in</c> when <c>tie_word_embeddings</c>.</summary>
[CausalLM(typeof(GptNeoXConfig), ModelType = "gpt_neox",
    // Older exports carry non-persistent buffers (the causal mask, masked_bias, rotary inv_freq).
    IgnoreUnexpectedKeys = [@"attention\.(bias|masked_bias)$", @"rotary_emb\.inv_freq$"])]
[Body("gpt_neox", typeof(GptNeoXModel))]
[LmHead("embed_out", TiedTo = "gpt_neox.embed_in", Tie = nameof(GptNeoXConfig.TieEmbeddings))]
public partial class GptNeoXForCausalLM;

/// <summary>GPT-NeoX's body (transformers' <c>GPTNeoXModel</c>): <c>embed_in</c>, the partial rotary position embedding, the <c>layers</c>, and the final LayerNorm <c>final_layer_norm</c>.</summary>
[TransformerStack(typeof(GptNeoXConfig), Dim = nameof(GptNeoXConfig.Hidden), EmbeddingDropout = nameof(GptNeoXConfig.HiddenDropout))]
[TokenEmbedding("embed_in", Vocab = nameof(GptNeoXConfig.VocabSize))]
[RotaryEmbedding(HeadDim = nameof(GptNeoXConfig.HeadDim), Theta = nameof(GptNeoXConfig.RopeTheta), RopeType = nameof(GptNeoXConfig.RopeType),
    Fraction = nameof(GptNeoXConfig.RotaryFraction), MaxPositions = nameof(GptNeoXConfig.MaxPositions))]
[Blocks("layers", typeof(GptNeoXLayer), Count = nameof(GptNeoXConfig.Layers))]
[FinalNorm("final_layer_norm", NormKind.LayerNorm, Eps = nameof(GptNeoXConfig.NormEps))]
public partial class GptNeoXModel;

/// <summary>One GPT-NeoX layer (transformers' <c>GPTNeoXLayer</c>): pre-LayerNorm attention and MLP, added to the input in parallel when <c>use_parallel_residual</c>, else in turn.</summary>
[TransformerBlock(typeof(GptNeoXConfig), Dim = nameof(GptNeoXConfig.Hidden), NormEps = nameof(GptNeoXConfig.NormEps),
    ParallelResidual = nameof(GptNeoXConfig.ParallelResidual))]
[Sublayer("attention", typeof(GptNeoXAttention), Norm = "input_layernorm", Dropout = nameof(GptNeoXConfig.HiddenDropout))]
[Sublayer("mlp", typeof(GptNeoXMlp), Norm = "post_attention_layernorm", Dropout = nameof(GptNeoXConfig.HiddenDropout))]
public partial class GptNeoXLayer;

/// <summary>GPT-NeoX's causal self-attention (transformers' <c>GPTNeoXAttention</c>): fused <c>query_key_value</c> laid out per head, RoPE on part of each head, output <c>dense</c>; biased when <c>attention_bias</c>.</summary>
[SelfAttention(typeof(GptNeoXConfig), Dim = nameof(GptNeoXConfig.Hidden), Heads = nameof(GptNeoXConfig.Heads), Causal = true, Rotary = true,
    Dropout = nameof(GptNeoXConfig.AttentionDropout))]
[Projection("query_key_value", ProjectionRole.Qkv, QkvLayout = QkvLayout.Interleaved, Bias = nameof(GptNeoXConfig.AttentionBias))]
[Projection("dense", ProjectionRole.Output, Bias = nameof(GptNeoXConfig.AttentionBias))]
public partial class GptNeoXAttention;

/// <summary>GPT-NeoX's MLP (transformers' <c>GPTNeoXMLP</c>): <c>dense_h_to_4h</c> up, activation, <c>dense_4h_to_h</c> down, with biases.</summary>
[FeedForward(typeof(GptNeoXConfig), Dim = nameof(GptNeoXConfig.Hidden), Inner = nameof(GptNeoXConfig.Intermediate), Activation = nameof(GptNeoXConfig.HiddenAct))]
[Projection("dense_h_to_4h", ProjectionRole.Up, Bias = "true")]
[Projection("dense_4h_to_h", ProjectionRole.Down, Bias = "true")]
public partial class GptNeoXMlp;
