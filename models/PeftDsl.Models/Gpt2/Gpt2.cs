using PeftDsl.Dsl;

namespace PeftDsl.Models.Gpt2;

// GPT-2 as transformers' GPT2LMHeadModel lays it out; every name below is a state-dict key segment.

/// <summary>GPT-2 with its language-modelling head (transformers' <c>GPT2LMHeadModel</c>): the <c>transformer</c> body and an <c>lm_head</c> tied to <c>wte</c> by default.</summary>
[CausalLM(typeof(Gpt2Config), ModelType = "gpt2",
    // Old checkpoints carry the causal-mask buffers as weights; transformers skips them too.
    IgnoreUnexpectedKeys = [@"\.attn\.(masked_)?bias$"])]
[Body("transformer", typeof(Gpt2Model))]
[LmHead("lm_head", TiedTo = "transformer.wte", Tie = nameof(Gpt2Config.TieEmbeddings))]
public partial class Gpt2LMHeadModel;

/// <summary>GPT-2's body (transformers' <c>GPT2Model</c>): token (<c>wte</c>) and learned position (<c>wpe</c>) embeddings, the blocks <c>h</c>, and the final LayerNorm <c>ln_f</c>.</summary>
[TransformerStack(typeof(Gpt2Config), Dim = nameof(Gpt2Config.Hidden), EmbeddingDropout = nameof(Gpt2Config.EmbeddingDropout))]
[TokenEmbedding("wte", Vocab = nameof(Gpt2Config.VocabSize))]
[PositionEmbedding("wpe", MaxPositions = nameof(Gpt2Config.MaxPositions))]
[Blocks("h", typeof(Gpt2Block), Count = nameof(Gpt2Config.Layers))]
[FinalNorm("ln_f", NormKind.LayerNorm, Eps = nameof(Gpt2Config.NormEps))]
public partial class Gpt2Model;

/// <summary>One GPT-2 block (transformers' <c>GPT2Block</c>): pre-LayerNorm attention (<c>ln_1</c>) and MLP (<c>ln_2</c>) with residuals.</summary>
[TransformerBlock(typeof(Gpt2Config), Dim = nameof(Gpt2Config.Hidden), Norm = NormKind.LayerNorm, NormEps = nameof(Gpt2Config.NormEps))]
[Sublayer("attn", typeof(Gpt2Attention), Norm = "ln_1", Dropout = nameof(Gpt2Config.ResidualDropout))]
[Sublayer("mlp", typeof(Gpt2Mlp), Norm = "ln_2", Dropout = nameof(Gpt2Config.ResidualDropout))]
public partial class Gpt2Block;

/// <summary>GPT-2's causal self-attention (transformers' <c>GPT2Attention</c>): fused Q/K/V <c>c_attn</c> and output <c>c_proj</c>, both Conv1D-layout with bias.</summary>
[SelfAttention(typeof(Gpt2Config), Dim = nameof(Gpt2Config.Hidden), Heads = nameof(Gpt2Config.Heads), Causal = true,
    Dropout = nameof(Gpt2Config.AttentionDropout))]
[Projection("c_attn", ProjectionRole.Qkv, Layout = WeightLayout.Conv1D, Bias = "true")]
[Projection("c_proj", ProjectionRole.Output, Layout = WeightLayout.Conv1D, Bias = "true")]
public partial class Gpt2Attention;

/// <summary>GPT-2's MLP (transformers' <c>GPT2MLP</c>): <c>c_fc</c> up, activation, <c>c_proj</c> down, Conv1D-layout with bias.</summary>
[FeedForward(typeof(Gpt2Config), Dim = nameof(Gpt2Config.Hidden), Inner = nameof(Gpt2Config.Inner), Activation = nameof(Gpt2Config.Activation))]
[Projection("c_fc", ProjectionRole.Up, Layout = WeightLayout.Conv1D, Bias = "true")]
[Projection("c_proj", ProjectionRole.Down, Layout = WeightLayout.Conv1D, Bias = "true")]
public partial class Gpt2Mlp;
