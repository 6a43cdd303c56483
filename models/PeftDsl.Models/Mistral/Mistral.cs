using PeftDsl.Dsl;

namespace PeftDsl.Models.Mistral;

// Mistral as transformers' MistralForCausalLM lays it out: Llama's network with sliding-window attention.

[CausalLM(typeof(MistralConfig), ModelType = "mistral", IgnoreUnexpectedKeys = [@"rotary_emb\.inv_freq$"])]
[Body("model", typeof(MistralModel))]
[LmHead("lm_head", TiedTo = "model.embed_tokens", Tie = nameof(MistralConfig.TieEmbeddings))]
public partial class MistralForCausalLM;

[TransformerStack(typeof(MistralConfig), Dim = nameof(MistralConfig.Hidden))]
[TokenEmbedding("embed_tokens", Vocab = nameof(MistralConfig.VocabSize))]
[RotaryEmbedding(HeadDim = nameof(MistralConfig.HeadDim), Theta = nameof(MistralConfig.RopeTheta), RopeType = nameof(MistralConfig.RopeType))]
[Blocks("layers", typeof(MistralDecoderLayer), Count = nameof(MistralConfig.Layers))]
[FinalNorm("norm", NormKind.RmsNorm, Eps = nameof(MistralConfig.RmsNormEps))]
public partial class MistralModel;

[TransformerBlock(typeof(MistralConfig), Dim = nameof(MistralConfig.Hidden), Norm = NormKind.RmsNorm, NormEps = nameof(MistralConfig.RmsNormEps))]
[Sublayer("self_attn", typeof(MistralAttention), Norm = "input_layernorm")]
[Sublayer("mlp", typeof(MistralMlp), Norm = "post_attention_layernorm")]
public partial class MistralDecoderLayer;

[SelfAttention(typeof(MistralConfig), Dim = nameof(MistralConfig.Hidden), Heads = nameof(MistralConfig.Heads),
    KvHeads = nameof(MistralConfig.KvHeads), HeadDim = nameof(MistralConfig.HeadDim), Causal = true, Rotary = true,
    SlidingWindow = nameof(MistralConfig.SlidingWindow))]
[Projection("q_proj", ProjectionRole.Query)]
[Projection("k_proj", ProjectionRole.Key)]
[Projection("v_proj", ProjectionRole.Value)]
[Projection("o_proj", ProjectionRole.Output)]
public partial class MistralAttention;

[FeedForward(typeof(MistralConfig), Dim = nameof(MistralConfig.Hidden), Inner = nameof(MistralConfig.Intermediate), Activation = nameof(MistralConfig.HiddenAct))]
[Projection("gate_proj", ProjectionRole.Gate)]
[Projection("up_proj", ProjectionRole.Up)]
[Projection("down_proj", ProjectionRole.Down)]
public partial class MistralMlp;
