using PeftDsl.Dsl;

namespace PeftDsl.Models.Mistral;

/// <summary>Mistral's config.json, as transformers' <c>MistralConfig</c> names it (4.x and 5.x layouts).</summary>
[ModelConfig]
public sealed partial record MistralConfig
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
    [ConfigKey("rope_parameters.rope_type", "rope_scaling.rope_type", "rope_scaling.type", Computes = new object[] { "default" })]
    public string RopeType { get; init; } = "default";
    /// <summary>null (newer Mistral releases) means no window.</summary>
    [ConfigKey("sliding_window")] public int? SlidingWindowOverride { get; init; }
    [ConfigKey("tie_word_embeddings")] public bool TieEmbeddings { get; init; }

    public int KvHeads => KvHeadsOverride ?? Heads;

    public int HeadDim => HeadDimOverride ?? Hidden / Heads;

    /// <summary>0 for none.</summary>
    public int SlidingWindow => SlidingWindowOverride ?? 0;
}
