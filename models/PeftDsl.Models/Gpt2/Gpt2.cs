using PeftDsl.Dsl;

namespace PeftDsl.Models.Gpt2;

// GPT-2 as transformers' GPT2LMHeadModel lays it out; every name below is a state-dict key segment.

[CausalLM(typeof(Gpt2Config), ModelType = "gpt2",
    // Old checkpoints carry the causal-mask buffers as weights; transformers skips them too.
    IgnoreUnexpectedKeys = [@"\.attn\.(masked_)?bias$"])]
[Body("transformer", typeof(Gpt2Model))]
[LmHead("lm_head", TiedTo = "transformer.wte", Tie = nameof(Gpt2Config.TieEmbeddings))]
public partial class Gpt2LMHeadModel;

[TransformerStack(typeof(Gpt2Config), Dim = nameof(Gpt2Config.Hidden))]
[TokenEmbedding("wte", Vocab = nameof(Gpt2Config.VocabSize))]
[PositionEmbedding("wpe", MaxPositions = nameof(Gpt2Config.MaxPositions))]
[Blocks("h", typeof(Gpt2Block), Count = nameof(Gpt2Config.Layers))]
[FinalNorm("ln_f", NormKind.LayerNorm, Eps = nameof(Gpt2Config.NormEps))]
public partial class Gpt2Model;

[TransformerBlock(typeof(Gpt2Config), Dim = nameof(Gpt2Config.Hidden), Norm = NormKind.LayerNorm, NormEps = nameof(Gpt2Config.NormEps))]
[Sublayer("attn", typeof(Gpt2Attention), Norm = "ln_1")]
[Sublayer("mlp", typeof(Gpt2Mlp), Norm = "ln_2")]
public partial class Gpt2Block;

[SelfAttention(typeof(Gpt2Config), Dim = nameof(Gpt2Config.Hidden), Heads = nameof(Gpt2Config.Heads), Causal = true)]
[Projection("c_attn", ProjectionRole.Qkv, Layout = WeightLayout.Conv1D, Bias = "true")]
[Projection("c_proj", ProjectionRole.Output, Layout = WeightLayout.Conv1D, Bias = "true")]
public partial class Gpt2Attention;

[FeedForward(typeof(Gpt2Config), Dim = nameof(Gpt2Config.Hidden), Inner = nameof(Gpt2Config.Inner), Activation = nameof(Gpt2Config.Activation))]
[Projection("c_fc", ProjectionRole.Up, Layout = WeightLayout.Conv1D, Bias = "true")]
[Projection("c_proj", ProjectionRole.Down, Layout = WeightLayout.Conv1D, Bias = "true")]
public partial class Gpt2Mlp;
