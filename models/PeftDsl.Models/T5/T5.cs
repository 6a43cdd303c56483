using PeftDsl.Dsl;

namespace PeftDsl.Models.T5;

// T5 and mT5 as transformers' T5ForConditionalGeneration and MT5ForConditionalGeneration lay them out. The nested names
// (`encoder.block.0.layer.0.SelfAttention.q`) come from dotted sublayer names; the relative position bias lives
// in the first block of each stack and is shared by the rest.

// mT5 is the same network (gated-GELU feed-forward, untied or v5-tied head) under its own model_type.
/// <summary>T5/mT5 with its language-modelling head (transformers' <c>T5ForConditionalGeneration</c>): the <c>shared</c> embedding, the <c>encoder</c> and <c>decoder</c> stacks, and <c>lm_head</c>.</summary>
[Seq2SeqLM(typeof(T5Config), ModelType = "t5", AlsoReads = ["mt5"], DecoderStartToken = nameof(T5Config.DecoderStartTokenId))]
[SharedEmbedding("shared", Vocab = nameof(T5Config.VocabSize), Dim = nameof(T5Config.DModel))]
[Encoder("encoder", typeof(T5EncoderStack))]
[Decoder("decoder", typeof(T5DecoderStack))]
[LmHead("lm_head", TiedTo = "shared", Tie = nameof(T5Config.TieEmbeddings), Scale = nameof(T5Config.ScaleDecoderOutputs))]
public partial class T5ForConditionalGeneration;

/// <summary>T5's encoder (transformers' <c>T5Stack</c> under <c>encoder</c>): the shared token embedding, the <c>block</c> list, and the final RMSNorm <c>final_layer_norm</c>.</summary>
[TransformerStack(typeof(T5Config), Dim = nameof(T5Config.DModel), EmbeddingDropout = nameof(T5Config.DropoutRate))]
[TokenEmbedding("embed_tokens", Shared = true)]
[Blocks("block", typeof(T5EncoderBlock), Count = nameof(T5Config.Layers))]
[FinalNorm("final_layer_norm", NormKind.RmsNorm, Eps = nameof(T5Config.Eps), Dropout = nameof(T5Config.DropoutRate))]
public partial class T5EncoderStack;

/// <summary>T5's decoder (transformers' <c>T5Stack</c> under <c>decoder</c>): the shared token embedding (no virtual prompts), the <c>block</c> list, and the final RMSNorm <c>final_layer_norm</c>.</summary>
[TransformerStack(typeof(T5Config), Dim = nameof(T5Config.DModel), EmbeddingDropout = nameof(T5Config.DropoutRate))]
[TokenEmbedding("embed_tokens", Shared = true, VirtualPrompts = false)]
[Blocks("block", typeof(T5DecoderBlock), Count = nameof(T5Config.DecoderLayers))]
[FinalNorm("final_layer_norm", NormKind.RmsNorm, Eps = nameof(T5Config.Eps), Dropout = nameof(T5Config.DropoutRate))]
public partial class T5DecoderStack;

/// <summary>One T5 encoder block (transformers' <c>T5Block</c>): pre-RMSNorm self-attention (<c>layer.0</c>) and feed-forward (<c>layer.1</c>) with residuals.</summary>
[TransformerBlock(typeof(T5Config), Dim = nameof(T5Config.DModel), Norm = NormKind.RmsNorm, NormEps = nameof(T5Config.Eps))]
[Sublayer("layer.0.SelfAttention", typeof(T5EncoderAttention), Norm = "layer.0.layer_norm", Dropout = nameof(T5Config.DropoutRate))]
[Sublayer("layer.1.DenseReluDense", typeof(T5FeedForward), Norm = "layer.1.layer_norm", Dropout = nameof(T5Config.DropoutRate))]
public partial class T5EncoderBlock;

/// <summary>One T5 decoder block (transformers' <c>T5Block</c>): pre-RMSNorm causal self-attention, cross-attention over the encoder output, and feed-forward (<c>layer.0</c> to <c>layer.2</c>) with residuals.</summary>
[TransformerBlock(typeof(T5Config), Dim = nameof(T5Config.DModel), Norm = NormKind.RmsNorm, NormEps = nameof(T5Config.Eps))]
[Sublayer("layer.0.SelfAttention", typeof(T5DecoderAttention), Norm = "layer.0.layer_norm", Dropout = nameof(T5Config.DropoutRate))]
[Sublayer("layer.1.EncDecAttention", typeof(T5CrossAttention), Norm = "layer.1.layer_norm", Dropout = nameof(T5Config.DropoutRate))]
[Sublayer("layer.2.DenseReluDense", typeof(T5FeedForward), Norm = "layer.2.layer_norm", Dropout = nameof(T5Config.DropoutRate))]
public partial class T5DecoderBlock;

/// <summary>T5's encoder self-attention (transformers' <c>T5Attention</c>): bidirectional and unscaled, with a relative position bias that the first block holds and the rest share.</summary>
[SelfAttention(typeof(T5Config), Dim = nameof(T5Config.DModel), Heads = nameof(T5Config.Heads), HeadDim = nameof(T5Config.DKv),
    Scaled = false, RelativeBias = "relative_attention_bias",
    RelativeBuckets = nameof(T5Config.RelativeBuckets), RelativeMaxDistance = nameof(T5Config.RelativeMaxDistance),
    Dropout = nameof(T5Config.DropoutRate))]
[Projection("q", ProjectionRole.Query)]
[Projection("k", ProjectionRole.Key)]
[Projection("v", ProjectionRole.Value)]
[Projection("o", ProjectionRole.Output)]
public partial class T5EncoderAttention;

/// <summary>T5's decoder self-attention (transformers' <c>T5Attention</c>, causal): unscaled, with a relative position bias that the first block holds and the rest share.</summary>
[SelfAttention(typeof(T5Config), Dim = nameof(T5Config.DModel), Heads = nameof(T5Config.Heads), HeadDim = nameof(T5Config.DKv),
    Scaled = false, Causal = true, RelativeBias = "relative_attention_bias",
    RelativeBuckets = nameof(T5Config.RelativeBuckets), RelativeMaxDistance = nameof(T5Config.RelativeMaxDistance),
    Dropout = nameof(T5Config.DropoutRate))]
[Projection("q", ProjectionRole.Query)]
[Projection("k", ProjectionRole.Key)]
[Projection("v", ProjectionRole.Value)]
[Projection("o", ProjectionRole.Output)]
public partial class T5DecoderAttention;

/// <summary>T5's decoder cross-attention (transformers' <c>T5Attention</c> as <c>EncDecAttention</c>): queries from the decoder, keys and values from the encoder output; unscaled, no position bias.</summary>
[CrossAttention(typeof(T5Config), Dim = nameof(T5Config.DModel), Heads = nameof(T5Config.Heads), HeadDim = nameof(T5Config.DKv), Scaled = false,
    Dropout = nameof(T5Config.DropoutRate))]
[Projection("q", ProjectionRole.Query)]
[Projection("k", ProjectionRole.Key)]
[Projection("v", ProjectionRole.Value)]
[Projection("o", ProjectionRole.Output)]
public partial class T5CrossAttention;

/// <summary>T5's feed-forward (transformers' <c>T5DenseActDense</c> or <c>T5DenseGatedActDense</c>): <c>wi</c>, activation, <c>wo</c>; or act(<c>wi_0</c>) × <c>wi_1</c>, then <c>wo</c>, when gated.</summary>
[FeedForward(typeof(T5Config), Dim = nameof(T5Config.DModel), Inner = nameof(T5Config.DFf), Activation = nameof(T5Config.Activation),
    Dropout = nameof(T5Config.DropoutRate))]
[Projection("wi", ProjectionRole.Up, When = "!" + nameof(T5Config.IsGated))]
[Projection("wi_0", ProjectionRole.Gate, When = nameof(T5Config.IsGated))]
[Projection("wi_1", ProjectionRole.Up, When = nameof(T5Config.IsGated))]
[Projection("wo", ProjectionRole.Down)]
public partial class T5FeedForward;
