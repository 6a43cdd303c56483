using PeftDsl.Dsl;

namespace PeftDsl.Models.Llama;

/// <summary>Llama's config.json, as transformers' <c>LlamaConfig</c> names it (4.x and 5.x layouts).</summary>
[ModelConfig]
public sealed partial record LlamaConfig
{
    [ConfigKey("vocab_size")] public required int VocabSize { get; init; }
    [ConfigKey("hidden_size")] public required int Hidden { get; init; }
    [ConfigKey("intermediate_size")] public required int Intermediate { get; init; }
    [ConfigKey("num_hidden_layers")] public required int Layers { get; init; }
    [ConfigKey("num_attention_heads")] public required int Heads { get; init; }
    [ConfigKey("num_key_value_heads")] public int? KvHeadsOverride { get; init; }
    [ConfigKey("head_dim")] public int? HeadDimOverride { get; init; }
    [ConfigKey("hidden_act")] public string HiddenAct { get; init; } = "silu";
    [ConfigKey("rms_norm_eps")] public double RmsNormEps { get; init; } = 1e-6;
    [ConfigKey("rope_parameters.rope_theta", "rope_theta")] public double RopeTheta { get; init; } = 10000.0;
    [ConfigKey("rope_parameters.rope_type", "rope_scaling.rope_type", "rope_scaling.type", Computes = new object[] { "default", "llama3" })]
    public string RopeType { get; init; } = "default";
    // Llama 3.1's rope scaling (rope_type "llama3"); 0 when absent, which that rope type refuses by name.
    [ConfigKey("rope_parameters.factor", "rope_scaling.factor")] public double RopeFactor { get; init; }
    [ConfigKey("rope_parameters.low_freq_factor", "rope_scaling.low_freq_factor")] public double RopeLowFreqFactor { get; init; }
    [ConfigKey("rope_parameters.high_freq_factor", "rope_scaling.high_freq_factor")] public double RopeHighFreqFactor { get; init; }
    [ConfigKey("rope_parameters.original_max_position_embeddings", "rope_scaling.original_max_position_embeddings")]
    public double RopeOriginalMaxPositions { get; init; }
    [ConfigKey("attention_bias")] public bool AttentionBias { get; init; }
    [ConfigKey("mlp_bias")] public bool MlpBias { get; init; }
    [ConfigKey("tie_word_embeddings")] public bool TieEmbeddings { get; init; }

    /// <summary>Without <c>num_key_value_heads</c> every head has its own keys and values.</summary>
    public int KvHeads => KvHeadsOverride ?? Heads;

    /// <summary>Without <c>head_dim</c> it is hidden_size / num_attention_heads.</summary>
    public int HeadDim => HeadDimOverride ?? Hidden / Heads;
}
