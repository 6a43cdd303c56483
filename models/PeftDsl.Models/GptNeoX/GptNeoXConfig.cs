using PeftDsl.Dsl;

namespace PeftDsl.Models.GptNeoX;

/// <summary>GPT-NeoX's (Pythia's) config.json, as transformers' <c>GPTNeoXConfig</c> names it (4.x and 5.x layouts);
/// defaults are that class's.</summary>
[ModelConfig]
public sealed partial record GptNeoXConfig
{
    /// <summary><c>vocab_size</c>: the vocabulary size (rows of <c>embed_in</c> and <c>embed_out</c>).</summary>
    [ConfigKey("vocab_size")] public required int VocabSize { get; init; }
    /// <summary><c>hidden_size</c>: the hidden size.</summary>
    [ConfigKey("hidden_size")] public required int Hidden { get; init; }
    /// <summary><c>intermediate_size</c>: the MLP's inner size.</summary>
    [ConfigKey("intermediate_size")] public required int Intermediate { get; init; }
    /// <summary><c>num_hidden_layers</c>: the number of layers.</summary>
    [ConfigKey("num_hidden_layers")] public required int Layers { get; init; }
    /// <summary><c>num_attention_heads</c>: attention heads per layer.</summary>
    [ConfigKey("num_attention_heads")] public required int Heads { get; init; }
    /// <summary><c>hidden_act</c>: the MLP activation; defaults to <c>gelu</c>.</summary>
    [ConfigKey("hidden_act")] public string HiddenAct { get; init; } = "gelu";
    /// <summary><c>layer_norm_eps</c>: the LayerNorms' epsilon; defaults to 1e-5.</summary>
    [ConfigKey("layer_norm_eps")] public double NormEps { get; init; } = 1e-5;
    /// <summary><c>rotary_emb_base</c> (also <c>rope_theta</c>; 5.x: <c>rope_parameters.rope_theta</c>): the RoPE base; defaults to 10000.</summary>
    [ConfigKey("rope_parameters.rope_theta", "rotary_emb_base", "rope_theta")] public double RopeTheta { get; init; } = 10000.0;
    /// <summary><c>rope_type</c> in <c>rope_parameters</c> or <c>rope_scaling</c>: the RoPE variant; only <c>default</c> is computed, others refused.</summary>
    [ConfigKey("rope_parameters.rope_type", "rope_scaling.rope_type", "rope_scaling.type", Computes = new object[] { "default" })]
    public string RopeType { get; init; } = "default";
    /// <summary><c>rotary_pct</c> (also <c>partial_rotary_factor</c>): the fraction of each head's dimensions that RoPE rotates; defaults to 0.25.</summary>
    [ConfigKey("rope_parameters.partial_rotary_factor", "partial_rotary_factor", "rotary_pct")] public double RotaryFraction { get; init; } = 0.25;
    /// <summary><c>use_parallel_residual</c>: x + attn(ln₁(x)) + mlp(ln₂(x)) instead of attention then MLP in turn; defaults to true.</summary>
    [ConfigKey("use_parallel_residual")] public bool ParallelResidual { get; init; } = true;
    /// <summary><c>attention_bias</c>: whether <c>query_key_value</c> and <c>dense</c> have biases; defaults to true.</summary>
    [ConfigKey("attention_bias")] public bool AttentionBias { get; init; } = true;
    /// <summary><c>attention_dropout</c>: dropout on the attention probabilities in training; defaults to 0.</summary>
    [ConfigKey("attention_dropout")] public double AttentionDropout { get; init; }
    /// <summary><c>hidden_dropout</c>: dropout on the embeddings and on the attention and MLP outputs in training; defaults to 0.</summary>
    [ConfigKey("hidden_dropout")] public double HiddenDropout { get; init; }
    /// <summary><c>max_position_embeddings</c>: the positions the checkpoint was trained for; generation refuses to go
    /// past them unless asked. Defaults to 2048, as transformers'.</summary>
    [ConfigKey("max_position_embeddings")] public int MaxPositions { get; init; } = 2048;
    /// <summary><c>tie_word_embeddings</c>: whether <c>embed_out</c> shares <c>embed_in</c>'s weight; defaults to false.</summary>
    [ConfigKey("tie_word_embeddings")] public bool TieEmbeddings { get; init; }

    /// <summary>The per-head size, hidden_size / num_attention_heads.</summary>
    public int HeadDim => Hidden / Heads;
}
