using PeftDsl.Dsl;

namespace MyModel;

// A Llama-style decoder (namespace from `dotnet new -n`): every name below is a checkpoint key segment, so a Hugging Face folder with the same layout
// loads with DecoderForCausalLM.FromPretrained(dir). The attributes are documented in PeftDsl's docs/dsl.md.

[CausalLM(typeof(DecoderConfig), ModelType = "decoder")]
[Body("model", typeof(DecoderStack))]
[LmHead("lm_head", TiedTo = "model.embed_tokens")]
public partial class DecoderForCausalLM;

[TransformerStack(typeof(DecoderConfig), Dim = nameof(DecoderConfig.Hidden))]
[TokenEmbedding("embed_tokens", Vocab = nameof(DecoderConfig.VocabSize))]
[RotaryEmbedding(HeadDim = nameof(DecoderConfig.HeadDim), Theta = nameof(DecoderConfig.RopeTheta))]
[Blocks("layers", typeof(DecoderLayer), Count = nameof(DecoderConfig.Layers))]
[FinalNorm("norm", NormKind.RmsNorm, Eps = nameof(DecoderConfig.Eps))]
public partial class DecoderStack;

[TransformerBlock(typeof(DecoderConfig), Dim = nameof(DecoderConfig.Hidden),
    Norm = NormKind.RmsNorm, NormEps = nameof(DecoderConfig.Eps))]
[Sublayer("self_attn", typeof(DecoderAttention), Norm = "input_layernorm")]
[Sublayer("mlp", typeof(DecoderMlp), Norm = "post_attention_layernorm")]
public partial class DecoderLayer;

[SelfAttention(typeof(DecoderConfig), Dim = nameof(DecoderConfig.Hidden), Heads = nameof(DecoderConfig.Heads),
    KvHeads = nameof(DecoderConfig.KvHeads), Causal = true, Rotary = true)]
[Projection("q_proj", ProjectionRole.Query)]
[Projection("k_proj", ProjectionRole.Key)]
[Projection("v_proj", ProjectionRole.Value)]
[Projection("o_proj", ProjectionRole.Output)]
public partial class DecoderAttention;

[FeedForward(typeof(DecoderConfig), Dim = nameof(DecoderConfig.Hidden), Inner = nameof(DecoderConfig.Intermediate),
    Activation = "silu")]
[Projection("gate_proj", ProjectionRole.Gate)]
[Projection("up_proj", ProjectionRole.Up)]
[Projection("down_proj", ProjectionRole.Down)]
public partial class DecoderMlp;
