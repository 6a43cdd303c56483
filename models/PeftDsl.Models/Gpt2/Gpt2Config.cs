using PeftDsl.Config;
using PeftDsl.Dsl;
using PeftDsl.Errors;

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
    [ConfigKey("scale_attn_weights")] public bool ScaleAttentionWeights { get; init; } = true;
    [ConfigKey("scale_attn_by_inverse_layer_idx")] public bool ScaleAttentionByLayer { get; init; }

    /// <summary>GPT-2 leaves <c>n_inner</c> null to mean 4 × n_embd.</summary>
    public int Inner => InnerOverride ?? 4 * Hidden;

    /// <summary>Attention variants transformers offers but this declaration does not compute are refused, never
    /// silently ignored. (<c>reorder_and_upcast_attn</c> only changes precision below fp32, so it is accepted.)</summary>
    partial void OnBound(ConfigJson json)
    {
        if (!ScaleAttentionWeights)
            throw new ConfigException($"{json.Source}: scale_attn_weights = false is not supported (GPT-2 attention here is scaled by 1/sqrt(head_dim))");
        if (ScaleAttentionByLayer)
            throw new ConfigException($"{json.Source}: scale_attn_by_inverse_layer_idx = true is not supported");
    }
}
