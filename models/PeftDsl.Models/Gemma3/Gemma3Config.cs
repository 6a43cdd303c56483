using System.Linq;
using PeftDsl.Config;
using PeftDsl.Dsl;
using PeftDsl.Errors;

namespace PeftDsl.Models.Gemma3;

/// <summary>Gemma 3's text config.json (<c>model_type</c> <c>gemma3_text</c>), as transformers' <c>Gemma3TextConfig</c>
/// names it. 4.x files give <c>rope_theta</c> (global layers), <c>rope_local_base_freq</c> (sliding layers),
/// <c>rope_scaling</c> (global layers only) and <c>sliding_window_pattern</c>; 5.x files give <c>rope_parameters</c>
/// keyed by layer type and <c>layer_types</c>. Both are read. Absent keys take transformers' defaults.</summary>
[ModelConfig]
public sealed partial record Gemma3Config
{
    /// <summary><c>vocab_size</c>: the vocabulary size; 262208 when absent.</summary>
    [ConfigKey("vocab_size")] public int VocabSize { get; init; } = 262208;
    /// <summary><c>hidden_size</c>: the hidden size.</summary>
    [ConfigKey("hidden_size")] public required int Hidden { get; init; }
    /// <summary><c>intermediate_size</c>: the MLP's inner size.</summary>
    [ConfigKey("intermediate_size")] public required int Intermediate { get; init; }
    /// <summary><c>num_hidden_layers</c>: the number of decoder layers.</summary>
    [ConfigKey("num_hidden_layers")] public required int Layers { get; init; }
    /// <summary><c>num_attention_heads</c>: query heads per layer.</summary>
    [ConfigKey("num_attention_heads")] public required int Heads { get; init; }
    /// <summary><c>num_key_value_heads</c>: key/value heads; 4 when absent, as transformers' default.</summary>
    [ConfigKey("num_key_value_heads")] public int KvHeads { get; init; } = 4;
    /// <summary><c>head_dim</c>: the per-head size; 256 when absent.</summary>
    [ConfigKey("head_dim")] public int HeadDim { get; init; } = 256;
    /// <summary><c>hidden_activation</c>: the MLP's gate activation; <c>gelu_pytorch_tanh</c> by default.</summary>
    [ConfigKey("hidden_activation")] public string HiddenActivation { get; init; } = "gelu_pytorch_tanh";
    /// <summary><c>rms_norm_eps</c>: the norms' epsilon; 1e-6 by default.</summary>
    [ConfigKey("rms_norm_eps")] public double RmsNormEps { get; init; } = 1e-6;
    /// <summary>The global layers' RoPE base: <c>rope_theta</c> (5.x: <c>rope_parameters.full_attention.rope_theta</c>); 1e6 by default.</summary>
    [ConfigKey("rope_theta", "rope_parameters.full_attention.rope_theta")] public double RopeTheta { get; init; } = 1_000_000.0;
    /// <summary>The global layers' rope type: <c>default</c> or <c>linear</c> (Gemma 3 4B and larger use linear, factor 8).</summary>
    [ConfigKey("rope_parameters.full_attention.rope_type", "rope_scaling.rope_type", "rope_scaling.type", Computes = new object[] { "default", "linear" })]
    public string RopeType { get; init; } = "default";
    /// <summary>The global layers' <c>linear</c> factor.</summary>
    [ConfigKey("rope_parameters.full_attention.factor", "rope_scaling.factor")] public double RopeFactor { get; init; }
    /// <summary>The sliding layers' RoPE base: <c>rope_local_base_freq</c> (5.x: <c>rope_parameters.sliding_attention.rope_theta</c>); 10000 by default.</summary>
    [ConfigKey("rope_local_base_freq", "rope_parameters.sliding_attention.rope_theta")] public double LocalRopeTheta { get; init; } = 10000.0;
    /// <summary>The sliding layers' rope type: only <c>default</c> is computed.</summary>
    [ConfigKey("rope_parameters.sliding_attention.rope_type", Computes = new object[] { "default" })] public string LocalRopeType { get; init; } = "default";
    /// <summary><c>query_pre_attn_scalar</c>: scores are scaled by its inverse square root; 256 by default.</summary>
    [ConfigKey("query_pre_attn_scalar")] public double QueryPreAttnScalar { get; init; } = 256;
    /// <summary><c>sliding_window</c>: the window of the sliding layers; 4096 by default, none when null.</summary>
    [ConfigKey("sliding_window")] public int? SlidingWindowValue { get; init; } = 4096;
    /// <summary><c>layer_types</c>: each layer's attention type; by default every <c>sliding_window_pattern</c>-th layer is global.</summary>
    [ConfigKey("layer_types")] public string[]? LayerTypesValue { get; init; }
    /// <summary><c>sliding_window_pattern</c> (4.x): one global layer in this many; 6 by default.</summary>
    [ConfigKey("sliding_window_pattern")] public int SlidingWindowPattern { get; init; } = 6;
    /// <summary><c>final_logit_softcapping</c>: none by default.</summary>
    [ConfigKey("final_logit_softcapping")] public double? FinalLogitSoftcapping { get; init; }
    /// <summary><c>attn_logit_softcapping</c>: read and not applied, as transformers' Gemma 3 attention ignores it.</summary>
    [ConfigKey("attn_logit_softcapping")] public double? AttnLogitSoftcapping { get; init; }
    /// <summary><c>attention_bias</c>: biases on q, k, v and o; false by default.</summary>
    [ConfigKey("attention_bias")] public bool AttentionBias { get; init; }
    /// <summary><c>attention_dropout</c>: dropout on the attention probabilities in training; 0 by default.</summary>
    [ConfigKey("attention_dropout")] public double AttentionDropout { get; init; }
    /// <summary><c>max_position_embeddings</c>: the positions the checkpoint was trained for; 131072 by default.</summary>
    [ConfigKey("max_position_embeddings")] public int MaxPositions { get; init; } = 131072;
    /// <summary><c>tie_word_embeddings</c>: whether the LM head shares <c>embed_tokens</c>' weight; true by default.</summary>
    [ConfigKey("tie_word_embeddings")] public bool TieEmbeddings { get; init; } = true;
    /// <summary><c>use_bidirectional_attention</c> (EmbeddingGemma): only the causal form (false) is computed.</summary>
    [ConfigKey("use_bidirectional_attention", Computes = new object[] { false })] public bool Bidirectional { get; init; }

    private bool windowOff;

    /// <summary>The window of the sliding layers; 0 for none.</summary>
    public int SlidingWindow => windowOff ? 0 : SlidingWindowValue ?? 0;
    /// <summary>The output logits' cap; 0 for none.</summary>
    public double FinalSoftcap => FinalLogitSoftcapping ?? 0;
    /// <summary>Each layer's attention type: <c>layer_types</c>, or one global layer every <c>sliding_window_pattern</c> (layers 5, 11, … of 6).</summary>
    public string[] LayerTypes => LayerTypesValue
        ?? Enumerable.Range(0, Layers).Select(i => (i + 1) % SlidingWindowPattern != 0 ? "sliding_attention" : "full_attention").ToArray();

    partial void OnBound(ConfigJson json)
    {
        windowOff = json.IsNull("sliding_window");
        if (LayerTypesValue is { } types && types.Length != Layers)
            throw new ConfigException($"{json.Source}: \"layer_types\" has {types.Length} entries, but num_hidden_layers is {Layers}");
        if (LayerTypesValue is null && SlidingWindowPattern <= 0)
            throw new ConfigException($"{json.Source}: \"sliding_window_pattern\" is {SlidingWindowPattern}; it must be a positive number of layers");
    }
}
