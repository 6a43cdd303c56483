using PeftDsl.Dsl;

namespace MyModel;

/// <summary>The model's config.json: each property is bound to its key, and the generator writes FromJson/Load.</summary>
[ModelConfig]
public sealed partial record DecoderConfig
{
    [ConfigKey("vocab_size")] public required int VocabSize { get; init; }
    [ConfigKey("hidden_size")] public required int Hidden { get; init; }
    [ConfigKey("intermediate_size")] public required int Intermediate { get; init; }
    [ConfigKey("num_hidden_layers")] public required int Layers { get; init; }
    [ConfigKey("num_attention_heads")] public required int Heads { get; init; }
    [ConfigKey("num_key_value_heads")] public required int KvHeads { get; init; }
    [ConfigKey("rope_theta")] public double RopeTheta { get; init; } = 10000.0;
    [ConfigKey("rms_norm_eps")] public double Eps { get; init; } = 1e-6;

    public int HeadDim => Hidden / Heads;
}
