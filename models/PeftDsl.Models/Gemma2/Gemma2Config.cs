using System.Linq;
using PeftDsl.Config;
using PeftDsl.Dsl;
using PeftDsl.Errors;

namespace PeftDsl.Models.Gemma2;

/// <summary>Gemma 2's config.json, as transformers' <c>Gemma2Config</c> names it (4.x and 5.x layouts). Absent keys take
/// transformers' defaults. Soft-capping and the window default to values, not to none, so an explicit null in the
/// file (which transformers reads as "none") is told apart from an absent key.</summary>
[ModelConfig]
public sealed partial record Gemma2Config
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
    /// <summary><c>num_key_value_heads</c>: key/value heads; 4 when absent, as transformers' default.</summary>
    [ConfigKey("num_key_value_heads")] public int KvHeads { get; init; } = 4;
    /// <summary><c>head_dim</c>: the per-head size; 256 when absent (not hidden / heads).</summary>
    [ConfigKey("head_dim")] public int HeadDim { get; init; } = 256;
    /// <summary><c>hidden_activation</c>: the MLP's gate activation; <c>gelu_pytorch_tanh</c> by default. (Gemma 2 configs
    /// also carry <c>hidden_act</c>, which transformers' Gemma 2 does not read.)</summary>
    [ConfigKey("hidden_activation")] public string HiddenActivation { get; init; } = "gelu_pytorch_tanh";
    /// <summary><c>rms_norm_eps</c>: the norms' epsilon; 1e-6 by default.</summary>
    [ConfigKey("rms_norm_eps")] public double RmsNormEps { get; init; } = 1e-6;
    /// <summary><c>rope_theta</c> (5.x: <c>rope_parameters.rope_theta</c>): the RoPE base; 10000 by default.</summary>
    [ConfigKey("rope_parameters.rope_theta", "rope_theta")] public double RopeTheta { get; init; } = 10000.0;
    /// <summary><c>rope_type</c>: <c>default</c> or <c>linear</c> (others are refused by name).</summary>
    [ConfigKey("rope_parameters.rope_type", "rope_scaling.rope_type", "rope_scaling.type", Computes = new object[] { "default", "linear" })]
    public string RopeType { get; init; } = "default";
    /// <summary><c>factor</c> of a <c>linear</c> rope scaling.</summary>
    [ConfigKey("rope_parameters.factor", "rope_scaling.factor")] public double RopeFactor { get; init; }
    /// <summary><c>query_pre_attn_scalar</c>: scores are scaled by its inverse square root; 256 by default.</summary>
    [ConfigKey("query_pre_attn_scalar")] public double QueryPreAttnScalar { get; init; } = 256;
    /// <summary><c>sliding_window</c>: the window of the sliding layers; 4096 by default, none when null.</summary>
    [ConfigKey("sliding_window")] public int? SlidingWindowValue { get; init; } = 4096;
    /// <summary><c>layer_types</c>: each layer's attention type; by default layers 0, 2, 4, … slide and the others are global.</summary>
    [ConfigKey("layer_types")] public string[]? LayerTypesValue { get; init; }
    /// <summary><c>attn_logit_softcapping</c>: 50 by default, none when null.</summary>
    [ConfigKey("attn_logit_softcapping")] public double? AttnLogitSoftcapping { get; init; } = 50.0;
    /// <summary><c>final_logit_softcapping</c>: 30 by default, none when null.</summary>
    [ConfigKey("final_logit_softcapping")] public double? FinalLogitSoftcapping { get; init; } = 30.0;
    /// <summary><c>attention_bias</c>: biases on q, k, v and o; false by default.</summary>
    [ConfigKey("attention_bias")] public bool AttentionBias { get; init; }
    /// <summary><c>attention_dropout</c>: dropout on the attention probabilities in training; 0 by default.</summary>
    [ConfigKey("attention_dropout")] public double AttentionDropout { get; init; }
    /// <summary><c>max_position_embeddings</c>: the positions the checkpoint was trained for; 8192 by default.</summary>
    [ConfigKey("max_position_embeddings")] public int MaxPositions { get; init; } = 8192;
    /// <summary><c>tie_word_embeddings</c>: whether the LM head shares <c>embed_tokens</c>' weight; true by default.</summary>
    [ConfigKey("tie_word_embeddings")] public bool TieEmbeddings { get; init; } = true;
    /// <summary><c>use_bidirectional_attention</c>: only the causal form (false) is computed.</summary>
    [ConfigKey("use_bidirectional_attention", Computes = new object[] { false })] public bool Bidirectional { get; init; }

    private bool windowOff, attnCapOff, finalCapOff;

    /// <summary>The window of the sliding layers; 0 for none.</summary>
    public int SlidingWindow => windowOff ? 0 : SlidingWindowValue ?? 0;
    /// <summary>The attention logits' cap; 0 for none.</summary>
    public double AttnSoftcap => attnCapOff ? 0 : AttnLogitSoftcapping ?? 0;
    /// <summary>The output logits' cap; 0 for none.</summary>
    public double FinalSoftcap => finalCapOff ? 0 : FinalLogitSoftcapping ?? 0;
    /// <summary>Each layer's attention type: <c>layer_types</c>, or Gemma 2's alternation (even layers slide).</summary>
    public string[] LayerTypes => LayerTypesValue
        ?? Enumerable.Range(0, Layers).Select(i => (i + 1) % 2 != 0 ? "sliding_attention" : "full_attention").ToArray();

    partial void OnBound(ConfigJson json)
    {
        windowOff = json.IsNull("sliding_window");
        attnCapOff = json.IsNull("attn_logit_softcapping");
        finalCapOff = json.IsNull("final_logit_softcapping");
        if (LayerTypesValue is { } types && types.Length != Layers)
            throw new ConfigException($"{json.Source}: \"layer_types\" has {types.Length} entries, but num_hidden_layers is {Layers}");
    }
}
