using PeftDsl.Dsl;

namespace PeftDsl.Models.Gpt2;

/// <summary>GPT-2's config.json, as transformers' <c>GPT2Config</c> names it.</summary>
[ModelConfig]
public sealed partial record Gpt2Config
{
    /// <summary><c>vocab_size</c>: the vocabulary size (rows of <c>wte</c> and the LM head).</summary>
    [ConfigKey("vocab_size")] public required int VocabSize { get; init; }
    /// <summary><c>n_positions</c>: the longest sequence, i.e. rows of the learned position embedding <c>wpe</c>.</summary>
    [ConfigKey("n_positions")] public required int MaxPositions { get; init; }
    /// <summary><c>n_embd</c>: the hidden (embedding) size.</summary>
    [ConfigKey("n_embd")] public required int Hidden { get; init; }
    /// <summary><c>n_layer</c>: the number of blocks.</summary>
    [ConfigKey("n_layer")] public required int Layers { get; init; }
    /// <summary><c>n_head</c>: attention heads per block.</summary>
    [ConfigKey("n_head")] public required int Heads { get; init; }
    /// <summary><c>n_inner</c>: the MLP's inner size; null means 4 × n_embd (see <c>Inner</c>).</summary>
    [ConfigKey("n_inner")] public int? InnerOverride { get; init; }
    /// <summary><c>activation_function</c>: the MLP activation; defaults to <c>gelu_new</c> (tanh-approximated GELU).</summary>
    [ConfigKey("activation_function")] public string Activation { get; init; } = "gelu_new";
    /// <summary><c>layer_norm_epsilon</c>: the LayerNorms' epsilon; defaults to 1e-5.</summary>
    [ConfigKey("layer_norm_epsilon")] public double NormEps { get; init; } = 1e-5;
    /// <summary><c>embd_pdrop</c>: dropout on the embeddings in training; defaults to 0.1, as transformers'.</summary>
    [ConfigKey("embd_pdrop")] public double EmbeddingDropout { get; init; } = 0.1;
    /// <summary><c>attn_pdrop</c>: dropout on the attention probabilities in training; defaults to 0.1.</summary>
    [ConfigKey("attn_pdrop")] public double AttentionDropout { get; init; } = 0.1;
    /// <summary><c>resid_pdrop</c>: dropout on the attention and MLP outputs in training; defaults to 0.1.</summary>
    [ConfigKey("resid_pdrop")] public double ResidualDropout { get; init; } = 0.1;
    /// <summary><c>tie_word_embeddings</c>: whether the LM head shares <c>wte</c>'s weight; defaults to true.</summary>
    [ConfigKey("tie_word_embeddings")] public bool TieEmbeddings { get; init; } = true;
    // transformers offers these attention variants; this declaration computes only the plain one, so others are refused.
    // (reorder_and_upcast_attn only changes precision below fp32, so it is accepted.)
    /// <summary><c>scale_attn_weights</c>: scale attention scores by 1/√head_dim; only true (the default) is computed.</summary>
    [ConfigKey("scale_attn_weights", Computes = new object[] { true })] public bool ScaleAttentionWeights { get; init; } = true;
    /// <summary><c>scale_attn_by_inverse_layer_idx</c>: also scale scores by 1/(layer index + 1); only false (the default) is computed.</summary>
    [ConfigKey("scale_attn_by_inverse_layer_idx", Computes = new object[] { false })] public bool ScaleAttentionByLayer { get; init; }

    /// <summary>GPT-2 leaves <c>n_inner</c> null to mean 4 × n_embd.</summary>
    public int Inner => InnerOverride ?? 4 * Hidden;
}
