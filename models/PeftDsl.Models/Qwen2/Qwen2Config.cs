using PeftDsl.Dsl;

namespace PeftDsl.Models.Qwen2;

/// <summary>Qwen2's config.json (Qwen2 and Qwen2.5), as transformers' <c>Qwen2Config</c> names it (4.x and 5.x
/// layouts). <c>sliding_window</c> is checked by the DSL's rule for keys no property binds: Qwen2.5 ships
/// <c>use_sliding_window: false</c>, which transformers reads as no window; a window that would apply is refused.</summary>
[ModelConfig]
public sealed partial record Qwen2Config
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
    /// <summary><c>head_dim</c>: the per-head size; null means hidden_size / num_attention_heads.</summary>
    [ConfigKey("head_dim")] public int? HeadDimOverride { get; init; }
    /// <summary><c>hidden_act</c>: the MLP's gate activation; defaults to <c>silu</c>.</summary>
    [ConfigKey("hidden_act")] public string HiddenAct { get; init; } = "silu";
    /// <summary><c>rms_norm_eps</c>: the RMSNorms' epsilon; defaults to 1e-6.</summary>
    [ConfigKey("rms_norm_eps")] public double RmsNormEps { get; init; } = 1e-6;
    /// <summary><c>rope_theta</c> (5.x: <c>rope_parameters.rope_theta</c>): the RoPE base; defaults to 10000.</summary>
    [ConfigKey("rope_parameters.rope_theta", "rope_theta")] public double RopeTheta { get; init; } = 10000.0;
    /// <summary><c>rope_type</c> in <c>rope_parameters</c> or <c>rope_scaling</c>: only <c>default</c> is computed (Qwen2.5's
    /// long-context YaRN setting is refused by name).</summary>
    [ConfigKey("rope_parameters.rope_type", "rope_scaling.rope_type", "rope_scaling.type", Computes = new object[] { "default" })]
    public string RopeType { get; init; } = "default";
    /// <summary><c>attention_dropout</c>: dropout on the attention probabilities in training; defaults to 0.</summary>
    [ConfigKey("attention_dropout")] public double AttentionDropout { get; init; }
    /// <summary><c>max_position_embeddings</c>: the positions the checkpoint was trained for; defaults to 32768, as transformers'.</summary>
    [ConfigKey("max_position_embeddings")] public int MaxPositions { get; init; } = 32768;
    /// <summary><c>tie_word_embeddings</c>: whether the LM head shares <c>embed_tokens</c>' weight; defaults to false.</summary>
    [ConfigKey("tie_word_embeddings")] public bool TieEmbeddings { get; init; }

    /// <summary>Qwen2 always biases q, k and v (there is no config key for it).</summary>
    public bool QkvBias => true;

    /// <summary>Without <c>num_key_value_heads</c> every head has its own keys and values.</summary>
    public int KvHeads => KvHeadsOverride ?? Heads;

    /// <summary>Without <c>head_dim</c> it is hidden_size / num_attention_heads.</summary>
    public int HeadDim => HeadDimOverride ?? Hidden / Heads;
}
