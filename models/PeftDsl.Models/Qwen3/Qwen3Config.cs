using PeftDsl.Dsl;

namespace PeftDsl.Models.Qwen3;

/// <summary>Qwen3's config.json, as transformers' <c>Qwen3Config</c> names it (4.x and 5.x layouts).
/// <c>sliding_window</c> is checked by the DSL's rule for keys no property binds: Qwen3 ships
/// <c>use_sliding_window: false</c>, which transformers reads as no window; a window that would apply is refused.</summary>
[ModelConfig]
public sealed partial record Qwen3Config
{
    /// <summary><c>vocab_size</c>: the vocabulary size (rows of <c>embed_tokens</c> and the LM head).</summary>
    [ConfigKey("vocab_size")] public required int VocabSize { get; init; }
    /// <summary><c>hidden_size</c>: the hidden size.</summary>
    [ConfigKey("hidden_size")] public required int Hidden { get; init; }
    /// <summary><c>intermediate_size</c>: the MLP's inner size.</summary>
    [ConfigKey("intermediate_size")] public required int Intermediate { get; init; }
    /// <summary><c>num_hidden_layers</c>: the number of decoder layers.</summary>
    [ConfigKey("num_hidden_layers")] public required int Layers { get; init; }
    /// <summary><c>num_attention_heads</c>: query heads per layer.</summary>
    [ConfigKey("num_attention_heads")] public required int Heads { get; init; }
    /// <summary><c>num_key_value_heads</c>: key/value heads for grouped-query attention; null means one per query head.</summary>
    [ConfigKey("num_key_value_heads")] public int? KvHeadsOverride { get; init; }
    /// <summary><c>head_dim</c>: the per-head size; 128 when absent, as transformers' Qwen3Config (not hidden / heads).</summary>
    [ConfigKey("head_dim")] public int HeadDim { get; init; } = 128;
    /// <summary><c>hidden_act</c>: the MLP's gate activation; defaults to <c>silu</c>.</summary>
    [ConfigKey("hidden_act")] public string HiddenAct { get; init; } = "silu";
    /// <summary><c>rms_norm_eps</c>: the RMSNorms' epsilon; defaults to 1e-6.</summary>
    [ConfigKey("rms_norm_eps")] public double RmsNormEps { get; init; } = 1e-6;
    /// <summary><c>rope_theta</c> (5.x: <c>rope_parameters.rope_theta</c>): the RoPE base; defaults to 10000.</summary>
    [ConfigKey("rope_parameters.rope_theta", "rope_theta")] public double RopeTheta { get; init; } = 10000.0;
    /// <summary><c>rope_type</c> in <c>rope_parameters</c> or <c>rope_scaling</c>: only <c>default</c> is computed (a long-context
    /// YaRN setting is refused by name).</summary>
    [ConfigKey("rope_parameters.rope_type", "rope_scaling.rope_type", "rope_scaling.type", Computes = new object[] { "default" })]
    public string RopeType { get; init; } = "default";
    /// <summary><c>attention_dropout</c>: dropout on the attention probabilities in training; defaults to 0.</summary>
    [ConfigKey("attention_dropout")] public double AttentionDropout { get; init; }
    /// <summary><c>max_position_embeddings</c>: the positions the checkpoint was trained for; defaults to 32768, as transformers'.</summary>
    [ConfigKey("max_position_embeddings")] public int MaxPositions { get; init; } = 32768;
    /// <summary><c>tie_word_embeddings</c>: whether the LM head shares <c>embed_tokens</c>' weight; defaults to false.</summary>
    [ConfigKey("tie_word_embeddings")] public bool TieEmbeddings { get; init; }

    /// <summary><c>attention_bias</c>: biases on q_proj, k_proj, v_proj and o_proj; defaults to false.</summary>
    [ConfigKey("attention_bias")] public bool AttentionBias { get; init; }

    /// <summary>Without <c>num_key_value_heads</c> every head has its own keys and values.</summary>
    public int KvHeads => KvHeadsOverride ?? Heads;
}
