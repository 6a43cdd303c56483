using System;
using PeftDsl.Dsl;

namespace PeftDsl.Models.T5;

/// <summary>T5's and mT5's config.json, as transformers' <c>T5Config</c>/<c>MT5Config</c> name it.</summary>
[ModelConfig]
public sealed partial record T5Config
{
    /// <summary><c>vocab_size</c>: the vocabulary size (rows of <c>shared</c> and the LM head).</summary>
    [ConfigKey("vocab_size")] public required int VocabSize { get; init; }
    /// <summary><c>d_model</c>: the hidden size.</summary>
    [ConfigKey("d_model")] public required int DModel { get; init; }
    /// <summary><c>d_kv</c>: the per-head size (num_heads × d_kv need not equal d_model).</summary>
    [ConfigKey("d_kv")] public required int DKv { get; init; }
    /// <summary><c>d_ff</c>: the feed-forward inner size.</summary>
    [ConfigKey("d_ff")] public required int DFf { get; init; }
    /// <summary><c>num_layers</c>: encoder blocks, and decoder blocks unless <c>num_decoder_layers</c> says otherwise.</summary>
    [ConfigKey("num_layers")] public required int Layers { get; init; }
    /// <summary><c>num_decoder_layers</c>: decoder blocks; null means as many as <c>num_layers</c>.</summary>
    [ConfigKey("num_decoder_layers")] public int? DecoderLayersOverride { get; init; }
    /// <summary><c>num_heads</c>: attention heads per layer.</summary>
    [ConfigKey("num_heads")] public required int Heads { get; init; }
    /// <summary><c>relative_attention_num_buckets</c>: buckets of the relative position bias; defaults to 32.</summary>
    [ConfigKey("relative_attention_num_buckets")] public int RelativeBuckets { get; init; } = 32;
    /// <summary><c>relative_attention_max_distance</c>: the distance beyond which positions share the last bucket; defaults to 128.</summary>
    [ConfigKey("relative_attention_max_distance")] public int RelativeMaxDistance { get; init; } = 128;
    /// <summary><c>layer_norm_epsilon</c>: the RMSNorms' epsilon; defaults to 1e-6.</summary>
    [ConfigKey("layer_norm_epsilon")] public double Eps { get; init; } = 1e-6;
    /// <summary><c>feed_forward_proj</c>: the feed-forward kind, an activation optionally prefixed <c>gated-</c>; defaults to <c>relu</c> (original T5).</summary>
    [ConfigKey("feed_forward_proj")] public string FeedForwardProj { get; init; } = "relu";
    /// <summary><c>tie_word_embeddings</c>: whether the LM head shares <c>shared</c>'s weight (before transformers 5 also whether the output is scaled); defaults to true.</summary>
    [ConfigKey("tie_word_embeddings")] public bool TieEmbeddings { get; init; } = true;
    /// <summary><c>scale_decoder_outputs</c> (transformers 5): whether the decoder output is scaled by d_model^-0.5 before the head; null when absent.</summary>
    [ConfigKey("scale_decoder_outputs")] public bool? ScaleDecoderOutputsOverride { get; init; }
    /// <summary><c>transformers_version</c>: the transformers version that saved the config; it decides what a missing <c>scale_decoder_outputs</c> means.</summary>
    [ConfigKey("transformers_version")] public string? TransformersVersion { get; init; }
    /// <summary><c>dropout_rate</c>: dropout on the embeddings, the attention probabilities, every sublayer's output, the
    /// feed-forward activation and the final norm's output, in training; defaults to 0.1, as transformers'.</summary>
    [ConfigKey("dropout_rate")] public double DropoutRate { get; init; } = 0.1;
    /// <summary><c>decoder_start_token_id</c>: the decoder's first token when generating; defaults to 0 (T5's pad token).</summary>
    [ConfigKey("decoder_start_token_id")] public int DecoderStartTokenId { get; init; }

    /// <summary>Without <c>num_decoder_layers</c> the decoder has as many blocks as the encoder.</summary>
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
