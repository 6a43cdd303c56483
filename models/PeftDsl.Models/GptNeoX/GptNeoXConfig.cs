using PeftDsl.Dsl;

namespace PeftDsl.Models.GptNeoX;

/// <summary>GPT-NeoX's (Pythia's) config.json, as transformers' <c>GPTNeoXConfig</c> names it (4.x and 5.x layouts);
/// defaults are that class's.</summary>
[ModelConfig]
public sealed partial record GptNeoXConfig
{
    [ConfigKey("vocab_size")] public required int VocabSize { get; init; }
    [ConfigKey("hidden_size")] public required int Hidden { get; init; }
    [ConfigKey("intermediate_size")] public required int Intermediate { get; init; }
    [ConfigKey("num_hidden_layers")] public required int Layers { get; init; }
    [ConfigKey("num_attention_heads")] public required int Heads { get; init; }
    [ConfigKey("hidden_act")] public string HiddenAct { get; init; } = "gelu";
    [ConfigKey("layer_norm_eps")] public double NormEps { get; init; } = 1e-5;
    [ConfigKey("rope_parameters.rope_theta", "rotary_emb_base", "rope_theta")] public double RopeTheta { get; init; } = 10000.0;
    [ConfigKey("rope_parameters.rope_type", "rope_scaling.rope_type", "rope_scaling.type", Computes = new object[] { "default" })]
    public string RopeType { get; init; } = "default";
    [ConfigKey("rope_parameters.partial_rotary_factor", "partial_rotary_factor", "rotary_pct")] public double RotaryFraction { get; init; } = 0.25;
    [ConfigKey("use_parallel_residual")] public bool ParallelResidual { get; init; } = true;
    [ConfigKey("attention_bias")] public bool AttentionBias { get; init; } = true;
    [ConfigKey("tie_word_embeddings")] public bool TieEmbeddings { get; init; }

    public int HeadDim => Hidden / Heads;
}
