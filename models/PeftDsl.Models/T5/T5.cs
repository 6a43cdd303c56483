using PeftDsl.Dsl;

namespace PeftDsl.Models.T5;

// T5 and mT5 as transformers' T5ForConditionalGeneration and MT5ForConditionalGeneration lay them out. The nested names
// (`encoder.block.0.layer.0.SelfAttention.q`) come from dotted sublayer names; the relative position bias lives
// in the first block of each stack and is shared by the rest.

// mT5 is the same network (gated-GELU feed-forward, untied or v5-tied head) under its own model_type.
[Seq2SeqLM(typeof(T5Config), ModelType = "t5", AlsoReads = ["mt5"], DecoderStartToken = nameof(T5Config.DecoderStartTokenId))]
[SharedEmbedding("shared", Vocab = nameof(T5Config.VocabSize), Dim = nameof(T5Config.DModel))]
[Encoder("encoder", typeof(T5EncoderStack))]
[Decoder("decoder", typeof(T5DecoderStack))]
[LmHead("lm_head", TiedTo = "shared", Tie = nameof(T5Config.TieEmbeddings), Scale = nameof(T5Config.ScaleDecoderOutputs))]
public partial class T5ForConditionalGeneration;

[TransformerStack(typeof(T5Config), Dim = nameof(T5Config.DModel))]
[TokenEmbedding("embed_tokens", Shared = true)]
[Blocks("block", typeof(T5EncoderBlock), Count = nameof(T5Config.Layers))]
[FinalNorm("final_layer_norm", NormKind.RmsNorm, Eps = nameof(T5Config.Eps))]
public partial class T5EncoderStack;

[TransformerStack(typeof(T5Config), Dim = nameof(T5Config.DModel))]
[TokenEmbedding("embed_tokens", Shared = true, VirtualPrompts = false)]
[Blocks("block", typeof(T5DecoderBlock), Count = nameof(T5Config.DecoderLayers))]
[FinalNorm("final_layer_norm", NormKind.RmsNorm, Eps = nameof(T5Config.Eps))]
public partial class T5DecoderStack;

[TransformerBlock(typeof(T5Config), Dim = nameof(T5Config.DModel), Norm = NormKind.RmsNorm, NormEps = nameof(T5Config.Eps))]
[Sublayer("layer.0.SelfAttention", typeof(T5EncoderAttention), Norm = "layer.0.layer_norm")]
[Sublayer("layer.1.DenseReluDense", typeof(T5FeedForward), Norm = "layer.1.layer_norm")]
public partial class T5EncoderBlock;

[TransformerBlock(typeof(T5Config), Dim = nameof(T5Config.DModel), Norm = NormKind.RmsNorm, NormEps = nameof(T5Config.Eps))]
[Sublayer("layer.0.SelfAttention", typeof(T5DecoderAttention), Norm = "layer.0.layer_norm")]
[Sublayer("layer.1.EncDecAttention", typeof(T5CrossAttention), Norm = "layer.1.layer_norm")]
[Sublayer("layer.2.DenseReluDense", typeof(T5FeedForward), Norm = "layer.2.layer_norm")]
public partial class T5DecoderBlock;

[SelfAttention(typeof(T5Config), Dim = nameof(T5Config.DModel), Heads = nameof(T5Config.Heads), HeadDim = nameof(T5Config.DKv),
    Scaled = false, RelativeBias = "relative_attention_bias",
    RelativeBuckets = nameof(T5Config.RelativeBuckets), RelativeMaxDistance = nameof(T5Config.RelativeMaxDistance))]
[Projection("q", ProjectionRole.Query)]
[Projection("k", ProjectionRole.Key)]
[Projection("v", ProjectionRole.Value)]
[Projection("o", ProjectionRole.Output)]
public partial class T5EncoderAttention;

[SelfAttention(typeof(T5Config), Dim = nameof(T5Config.DModel), Heads = nameof(T5Config.Heads), HeadDim = nameof(T5Config.DKv),
    Scaled = false, Causal = true, RelativeBias = "relative_attention_bias",
    RelativeBuckets = nameof(T5Config.RelativeBuckets), RelativeMaxDistance = nameof(T5Config.RelativeMaxDistance))]
[Projection("q", ProjectionRole.Query)]
[Projection("k", ProjectionRole.Key)]
[Projection("v", ProjectionRole.Value)]
[Projection("o", ProjectionRole.Output)]
public partial class T5DecoderAttention;

[CrossAttention(typeof(T5Config), Dim = nameof(T5Config.DModel), Heads = nameof(T5Config.Heads), HeadDim = nameof(T5Config.DKv), Scaled = false)]
[Projection("q", ProjectionRole.Query)]
[Projection("k", ProjectionRole.Key)]
[Projection("v", ProjectionRole.Value)]
[Projection("o", ProjectionRole.Output)]
public partial class T5CrossAttention;

[FeedForward(typeof(T5Config), Dim = nameof(T5Config.DModel), Inner = nameof(T5Config.DFf), Activation = nameof(T5Config.Activation))]
[Projection("wi", ProjectionRole.Up, When = "!" + nameof(T5Config.IsGated))]
[Projection("wi_0", ProjectionRole.Gate, When = nameof(T5Config.IsGated))]
[Projection("wi_1", ProjectionRole.Up, When = nameof(T5Config.IsGated))]
[Projection("wo", ProjectionRole.Down)]
public partial class T5FeedForward;
