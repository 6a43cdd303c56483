using PeftDsl.Dsl;

namespace PeftDsl.Models.Llama;

// Llama as transformers' LlamaForCausalLM lays it out: grouped-query attention, RoPE, RMSNorm, SwiGLU.

[CausalLM(typeof(LlamaConfig), ModelType = "llama",
    // Some exported checkpoints still carry the non-persistent RoPE buffer.
    IgnoreUnexpectedKeys = [@"rotary_emb\.inv_freq$"])]
[Body("model", typeof(LlamaModel))]
[LmHead("lm_head", TiedTo = "model.embed_tokens", Tie = nameof(LlamaConfig.TieEmbeddings))]
public partial class LlamaForCausalLM;

[TransformerStack(typeof(LlamaConfig), Dim = nameof(LlamaConfig.Hidden))]
[TokenEmbedding("embed_tokens", Vocab = nameof(LlamaConfig.VocabSize))]
[RotaryEmbedding(HeadDim = nameof(LlamaConfig.HeadDim), Theta = nameof(LlamaConfig.RopeTheta), RopeType = nameof(LlamaConfig.RopeType),
    ScalingFactor = nameof(LlamaConfig.RopeFactor), LowFreqFactor = nameof(LlamaConfig.RopeLowFreqFactor),
    HighFreqFactor = nameof(LlamaConfig.RopeHighFreqFactor), OriginalMaxPositions = nameof(LlamaConfig.RopeOriginalMaxPositions))]
[Blocks("layers", typeof(LlamaDecoderLayer), Count = nameof(LlamaConfig.Layers))]
[FinalNorm("norm", NormKind.RmsNorm, Eps = nameof(LlamaConfig.RmsNormEps))]
public partial class LlamaModel;

[TransformerBlock(typeof(LlamaConfig), Dim = nameof(LlamaConfig.Hidden), Norm = NormKind.RmsNorm, NormEps = nameof(LlamaConfig.RmsNormEps))]
[Sublayer("self_attn", typeof(LlamaAttention), Norm = "input_layernorm")]
[Sublayer("mlp", typeof(LlamaMlp), Norm = "post_attention_layernorm")]
public partial class LlamaDecoderLayer;

[SelfAttention(typeof(LlamaConfig), Dim = nameof(LlamaConfig.Hidden), Heads = nameof(LlamaConfig.Heads),
    KvHeads = nameof(LlamaConfig.KvHeads), HeadDim = nameof(LlamaConfig.HeadDim), Causal = true, Rotary = true)]
[Projection("q_proj", ProjectionRole.Query, Bias = nameof(LlamaConfig.AttentionBias))]
[Projection("k_proj", ProjectionRole.Key, Bias = nameof(LlamaConfig.AttentionBias))]
[Projection("v_proj", ProjectionRole.Value, Bias = nameof(LlamaConfig.AttentionBias))]
[Projection("o_proj", ProjectionRole.Output, Bias = nameof(LlamaConfig.AttentionBias))]
public partial class LlamaAttention;

[FeedForward(typeof(LlamaConfig), Dim = nameof(LlamaConfig.Hidden), Inner = nameof(LlamaConfig.Intermediate), Activation = nameof(LlamaConfig.HiddenAct))]
[Projection("gate_proj", ProjectionRole.Gate, Bias = nameof(LlamaConfig.MlpBias))]
[Projection("up_proj", ProjectionRole.Up, Bias = nameof(LlamaConfig.MlpBias))]
[Projection("down_proj", ProjectionRole.Down, Bias = nameof(LlamaConfig.MlpBias))]
public partial class LlamaMlp;
