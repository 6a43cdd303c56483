using PeftDsl.Dsl;

namespace PeftDsl.Models.Gpt2;

/// <summary>GPT-2's config.json, as transformers' <c>GPT2Config</c> names it.</summary>
[ModelConfig]
public sealed partial record Gpt2Config
{
    [ConfigKey("vocab_size")] public required int VocabSize { get; init; }
    [ConfigKey("n_positions")] public required int MaxPositions { get; init; }
    [ConfigKey("n_embd")] public required int Hidden { get; init; }
    [ConfigKey("n_layer")] public required int Layers { get; init; }
    [ConfigKey("n_head")] public required int Heads { get; init; }
    [ConfigKey("n_inner")] public int? InnerOverride { get; init; }
    [ConfigKey("activation_function")] public string Activation { get; init; } = "gelu_new";
    [ConfigKey("layer_norm_epsilon")] public double NormEps { get; init; } = 1e-5;
    [ConfigKey("tie_word_embeddings")] public bool TieEmbeddings { get; init; } = true;
    // transformers offers these attention variants; this declaration computes only the plain one, so others are refused.
    // (reorder_and_upcast_attn only changes precision below fp32, so it is accepted.)
    [ConfigKey("scale_attn_weights", Computes = new object[] { true })] public bool ScaleAttentionWeights { get; init; } = true;
    [ConfigKey("scale_attn_by_inverse_layer_idx", Computes = new object[] { false })] public bool ScaleAttentionByLayer { get; init; }

    /// <summary>GPT-2 leaves <c>n_inner</c> null to mean 4 × n_embd.</summary>
    public int Inner => InnerOverride ?? 4 * Hidden;
}
