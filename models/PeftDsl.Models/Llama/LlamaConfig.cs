using PeftDsl.Dsl;

namespace PeftDsl.Models.Llama;

/// <summary>Llama's config.json, as transformers' <c>LlamaConfig</c> names it (4.x and 5.x layouts).</summary>
[ModelConfig]
public sealed partial record LlamaConfig
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
    /// <summary><c>rope_type</c> in <c>rope_parameters</c> or <c>rope_scaling</c>: the RoPE variant; <c>default</c> and <c>llama3</c> are computed, others refused.</summary>
    [ConfigKey("rope_parameters.rope_type", "rope_scaling.rope_type", "rope_scaling.type", Computes = new object[] { "default", "llama3" })]
    public string RopeType { get; init; } = "default";
    // Llama 3.1's rope scaling (rope_type "llama3"); 0 when absent, which that rope type refuses by name.
    /// <summary><c>factor</c> (Llama 3 rope scaling): how much the low frequencies (long wavelengths) are stretched.</summary>
    [ConfigKey("rope_parameters.factor", "rope_scaling.factor")] public double RopeFactor { get; init; }
    /// <summary><c>low_freq_factor</c> (Llama 3 rope scaling): wavelengths above original_max_position_embeddings / low_freq_factor are fully scaled.</summary>
    [ConfigKey("rope_parameters.low_freq_factor", "rope_scaling.low_freq_factor")] public double RopeLowFreqFactor { get; init; }
    /// <summary><c>high_freq_factor</c> (Llama 3 rope scaling): wavelengths below original_max_position_embeddings / high_freq_factor are left as they are.</summary>
    [ConfigKey("rope_parameters.high_freq_factor", "rope_scaling.high_freq_factor")] public double RopeHighFreqFactor { get; init; }
    /// <summary><c>original_max_position_embeddings</c> (Llama 3 rope scaling): the context length the model was pre-trained at.</summary>
    [ConfigKey("rope_parameters.original_max_position_embeddings", "rope_scaling.original_max_position_embeddings")]
    public double RopeOriginalMaxPositions { get; init; }
    /// <summary><c>attention_bias</c>: whether the q/k/v/o projections have biases; defaults to false.</summary>
    [ConfigKey("attention_bias")] public bool AttentionBias { get; init; }
    /// <summary><c>mlp_bias</c>: whether the gate/up/down projections have biases; defaults to false.</summary>
    [ConfigKey("mlp_bias")] public bool MlpBias { get; init; }
    /// <summary><c>attention_dropout</c>: dropout on the attention probabilities in training; defaults to 0.</summary>
    [ConfigKey("attention_dropout")] public double AttentionDropout { get; init; }
    /// <summary><c>max_position_embeddings</c>: the positions the checkpoint was trained for; generation refuses to go
    /// past them unless asked. Defaults to 2048, as transformers'.</summary>
    [ConfigKey("max_position_embeddings")] public int MaxPositions { get; init; } = 2048;
    /// <summary><c>tie_word_embeddings</c>: whether the LM head shares <c>embed_tokens</c>' weight; defaults to false.</summary>
    [ConfigKey("tie_word_embeddings")] public bool TieEmbeddings { get; init; }

    /// <summary>Without <c>num_key_value_heads</c> every head has its own keys and values.</summary>
    public int KvHeads => KvHeadsOverride ?? Heads;

    /// <summary>Without <c>head_dim</c> it is hidden_size / num_attention_heads.</summary>
    public int HeadDim => HeadDimOverride ?? Hidden / Heads;
}
