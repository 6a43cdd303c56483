using System;
using PeftDsl.Dsl;

namespace PeftDsl.Models.T5;

/// <summary>T5's and mT5's config.json, as transformers' <c>T5Config</c>/<c>MT5Config</c> name it.</summary>
[ModelConfig]
public sealed partial record T5Config
{
    [ConfigKey("vocab_size")] public required int VocabSize { get; init; }
    [ConfigKey("d_model")] public required int DModel { get; init; }
    [ConfigKey("d_kv")] public required int DKv { get; init; }
    [ConfigKey("d_ff")] public required int DFf { get; init; }
    [ConfigKey("num_layers")] public required int Layers { get; init; }
    [ConfigKey("num_decoder_layers")] public int? DecoderLayersOverride { get; init; }
    [ConfigKey("num_heads")] public required int Heads { get; init; }
    [ConfigKey("relative_attention_num_buckets")] public int RelativeBuckets { get; init; } = 32;
    [ConfigKey("relative_attention_max_distance")] public int RelativeMaxDistance { get; init; } = 128;
    [ConfigKey("layer_norm_epsilon")] public double Eps { get; init; } = 1e-6;
    [ConfigKey("feed_forward_proj")] public string FeedForwardProj { get; init; } = "relu";
    [ConfigKey("tie_word_embeddings")] public bool TieEmbeddings { get; init; } = true;
    [ConfigKey("scale_decoder_outputs")] public bool? ScaleDecoderOutputsOverride { get; init; }
    [ConfigKey("transformers_version")] public string? TransformersVersion { get; init; }
    [ConfigKey("decoder_start_token_id")] public int DecoderStartTokenId { get; init; }

    public int DecoderLayers => DecoderLayersOverride ?? Layers;

    /// <summary>"gated-gelu" (T5 v1.1, mT5) has wi_0/wi_1; "relu" (original T5) has wi.</summary>
    public bool IsGated => FeedForwardProj.StartsWith("gated-", StringComparison.Ordinal);

    /// <summary>transformers maps "gated-gelu" to the tanh GELU ("gelu_new"); otherwise the part after "gated-".</summary>
    public string Activation => FeedForwardProj switch
    {
        "gated-gelu" => "gelu_new",
        var p when p.StartsWith("gated-", StringComparison.Ordinal) => p["gated-".Length..],
        var p => p,
    };

    /// <summary>
    /// Whether the decoder output is multiplied by d_model^-0.5 before the head. transformers 4 scaled exactly when
    /// tie_word_embeddings was true (T5 v1.1 and mT5 set it false to mean "do not scale"). transformers 5 forces
    /// tie_word_embeddings to true for the T5 family and keeps the scaling in scale_decoder_outputs, which it writes
    /// when true; so a version-5 config without the key does not scale (the mT5 fixture confirms it).
    /// </summary>
    public bool ScaleDecoderOutputs => ScaleDecoderOutputsOverride ?? (SavedByTransformers5 ? false : TieEmbeddings);

    private bool SavedByTransformers5 =>
        TransformersVersion is { } v && int.TryParse(v.Split('.')[0], out var major) && major >= 5;
}
