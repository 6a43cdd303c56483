using PeftDsl.Dsl;

namespace PeftDsl.Models.Phi3;

/// <summary>Phi-3's config.json (Phi-3, Phi-3.5-mini, Phi-4-mini), as transformers' <c>Phi3Config</c> names it (4.x and
/// 5.x layouts). Phi-3.5-mini and Phi-4-mini scale their rotary positions with longrope, whose factors are lists.</summary>
[ModelConfig]
public sealed partial record Phi3Config
{
    /// <summary><c>vocab_size</c>: the vocabulary size (rows of <c>embed_tokens</c> and the LM head).</summary>
    [ConfigKey("vocab_size")] public required int VocabSize { get; init; }
    /// <summary><c>hidden_size</c>: the hidden size.</summary>
    [ConfigKey("hidden_size")] public required int Hidden { get; init; }
    /// <summary><c>intermediate_size</c>: the MLP's inner size (<c>gate_up_proj</c> outputs twice it).</summary>
    [ConfigKey("intermediate_size")] public required int Intermediate { get; init; }
    /// <summary><c>num_hidden_layers</c>: the number of decoder layers.</summary>
    [ConfigKey("num_hidden_layers")] public required int Layers { get; init; }
    /// <summary><c>num_attention_heads</c>: query heads per layer.</summary>
    [ConfigKey("num_attention_heads")] public required int Heads { get; init; }
    /// <summary><c>num_key_value_heads</c>: key/value heads; null means one per query head.</summary>
    [ConfigKey("num_key_value_heads")] public int? KvHeadsOverride { get; init; }
    /// <summary><c>head_dim</c>: the per-head size; null means hidden_size / num_attention_heads.</summary>
    [ConfigKey("head_dim")] public int? HeadDimOverride { get; init; }
    /// <summary><c>hidden_act</c>: the activation on the gate half; <c>silu</c> by default.</summary>
    [ConfigKey("hidden_act")] public string HiddenAct { get; init; } = "silu";
    /// <summary><c>rms_norm_eps</c>: the RMSNorms' epsilon; 1e-5 by default.</summary>
    [ConfigKey("rms_norm_eps")] public double RmsNormEps { get; init; } = 1e-5;
    /// <summary><c>rope_theta</c> (5.x: <c>rope_parameters.rope_theta</c>): the RoPE base; 10000 by default.</summary>
    [ConfigKey("rope_parameters.rope_theta", "rope_theta")] public double RopeTheta { get; init; } = 10000.0;
    /// <summary><c>partial_rotary_factor</c>: the rotated share of each head (Phi-4-mini: 0.75); 1 by default.</summary>
    [ConfigKey("rope_parameters.partial_rotary_factor", "partial_rotary_factor")] public double RotaryFraction { get; init; } = 1.0;
    /// <summary><c>rope_type</c>: <c>default</c>, or <c>longrope</c> (its old name <c>su</c>) for Phi-3.5/Phi-4-mini.</summary>
    [ConfigKey("rope_parameters.rope_type", "rope_scaling.rope_type", "rope_scaling.type", Computes = new object[] { "default", "longrope", "su" })]
    public string RopeType { get; init; } = "default";
    /// <summary>longrope's <c>short_factor</c>: one per rotated pair.</summary>
    [ConfigKey("rope_parameters.short_factor", "rope_scaling.short_factor")] public double[]? ShortFactorValue { get; init; }
    /// <summary>longrope's <c>long_factor</c>: one per rotated pair.</summary>
    [ConfigKey("rope_parameters.long_factor", "rope_scaling.long_factor")] public double[]? LongFactorValue { get; init; }
    /// <summary>longrope's <c>factor</c>; absent: max_position_embeddings / original_max_position_embeddings.</summary>
    [ConfigKey("rope_parameters.factor", "rope_scaling.factor")] public double RopeFactor { get; init; }
    /// <summary>longrope's <c>attention_factor</c>; absent: derived from the factor.</summary>
    [ConfigKey("rope_parameters.attention_factor", "rope_scaling.attention_factor")] public double RopeAttentionFactor { get; init; }
    /// <summary><c>original_max_position_embeddings</c>: the context past which longrope's long factors apply; 4096 by default.</summary>
    [ConfigKey("original_max_position_embeddings", "rope_parameters.original_max_position_embeddings")] public int OriginalMaxPositions { get; init; } = 4096;
    /// <summary><c>max_position_embeddings</c>: the positions the checkpoint was trained for; 4096 by default.</summary>
    [ConfigKey("max_position_embeddings")] public int MaxPositions { get; init; } = 4096;
    /// <summary><c>sliding_window</c>: the attention window (Phi-3-mini-4k: 2047); null means none.</summary>
    [ConfigKey("sliding_window")] public int? SlidingWindowOverride { get; init; }
    /// <summary><c>resid_pdrop</c>: dropout on each sublayer's output in training; 0 by default.</summary>
    [ConfigKey("resid_pdrop")] public double ResidDropout { get; init; }
    /// <summary><c>attention_dropout</c>: dropout on the attention probabilities in training; 0 by default.</summary>
    [ConfigKey("attention_dropout")] public double AttentionDropout { get; init; }
    /// <summary><c>tie_word_embeddings</c>: whether the LM head shares <c>embed_tokens</c>' weight (Phi-4-mini: true); false by default.</summary>
    [ConfigKey("tie_word_embeddings")] public bool TieEmbeddings { get; init; }

    /// <summary>Without <c>num_key_value_heads</c> every head has its own keys and values.</summary>
    public int KvHeads => KvHeadsOverride ?? Heads;
    /// <summary>Without <c>head_dim</c> it is hidden_size / num_attention_heads.</summary>
    public int HeadDim => HeadDimOverride ?? Hidden / Heads;
    /// <summary>0 for none.</summary>
    public int SlidingWindow => SlidingWindowOverride ?? 0;
    /// <summary>longrope's short factors; empty when not given.</summary>
    public double[] ShortFactor => ShortFactorValue ?? [];
    /// <summary>longrope's long factors; empty when not given.</summary>
    public double[] LongFactor => LongFactorValue ?? [];
}
