namespace PeftDsl.Dsl;

// Module kinds: each DSL class carries exactly one. The kind fixes the module's forward pass; the component
// attributes below fix its submodules and their checkpoint names.
//
// Hyper-parameter arguments are *bindings*: a string that names a member of the config type (a property,
// including computed ones such as `HeadDim => Hidden / Heads`) or a literal ("32", "1e-5", "true", "gelu_new").
// Bindings keep attribute arguments constant while the values come from config.json at run time.

/// <summary>The root of a decoder-only language model: a body stack and an LM head, with the loss.</summary>
[AttributeUsage(AttributeTargets.Class, Inherited = false)]
public sealed class CausalLMAttribute(Type config) : Attribute
{
    /// <summary>The <c>[ModelConfig]</c> record bound from <c>config.json</c>; the string bindings of this class name its
    /// members. Every module of one model must use the same config type.</summary>
    public Type Config { get; } = config;
    /// <summary>The checkpoint's <c>model_type</c> in config.json (<c>gpt2</c>, <c>llama</c>).</summary>
    public string? ModelType { get; set; }
    /// <summary>Other <c>model_type</c> values with the same network that this class also reads.</summary>
    public string[]? AlsoReads { get; set; }
    /// <summary>Regexes of checkpoint keys to ignore when loading (stale buffers such as GPT-2's <c>attn.bias</c>).</summary>
    public string[]? IgnoreUnexpectedKeys { get; set; }
}

/// <summary>The root of an encoder-decoder language model (T5, mT5): a shared embedding, an encoder stack, a
/// decoder stack with cross-attention, and an LM head.</summary>
[AttributeUsage(AttributeTargets.Class, Inherited = false)]
public sealed class Seq2SeqLMAttribute(Type config) : Attribute
{
    /// <summary>The <c>[ModelConfig]</c> record bound from <c>config.json</c>; the string bindings of this class name its
    /// members. Every module of one model must use the same config type.</summary>
    public Type Config { get; } = config;
    /// <summary>The checkpoint's <c>model_type</c> in config.json (<c>t5</c>).</summary>
    public string? ModelType { get; set; }
    /// <summary>Other <c>model_type</c> values with the same network that this class also reads (<c>mt5</c>).</summary>
    public string[]? AlsoReads { get; set; }
    /// <summary>Binding: the decoder's first token when generating (T5: decoder_start_token_id, the pad token 0).</summary>
    public string DecoderStartToken { get; set; } = "0";
    /// <summary>Regexes of checkpoint keys to ignore when loading.</summary>
    public string[]? IgnoreUnexpectedKeys { get; set; }
}

/// <summary>Embeddings, N stacked blocks, a final norm: GPT-2's <c>transformer</c>, Llama's <c>model</c>, T5's
/// <c>encoder</c> and <c>decoder</c>. A stack whose blocks have a cross-attention sublayer is a decoder: it reads
/// the encoder output from its inputs.</summary>
[AttributeUsage(AttributeTargets.Class, Inherited = false)]
public sealed class TransformerStackAttribute(Type config) : Attribute
{
    /// <summary>The <c>[ModelConfig]</c> record bound from <c>config.json</c>; the string bindings of this class name its
    /// members. Every module of one model must use the same config type.</summary>
    public Type Config { get; } = config;
    /// <summary>Binding: the hidden size.</summary>
    public string Dim { get; set; } = "";

    /// <summary>Binding: dropout on the embeddings (after positions and virtual tokens are added) in training (GPT-2's
    /// <c>embd_pdrop</c>, T5's <c>dropout_rate</c>); "0" (the default) for none.</summary>
    public string EmbeddingDropout { get; set; } = "0";
}

/// <summary>One residual block. Sublayers run in the order self-attention, cross-attention, feed-forward.</summary>
[AttributeUsage(AttributeTargets.Class, Inherited = false)]
public sealed class TransformerBlockAttribute(Type config) : Attribute
{
    /// <summary>The <c>[ModelConfig]</c> record bound from <c>config.json</c>; the string bindings of this class name its
    /// members. Every module of one model must use the same config type.</summary>
    public Type Config { get; } = config;
    /// <summary>Binding: the hidden size.</summary>
    public string Dim { get; set; } = "";
    /// <summary>The kind of the norms the block's sublayers name (<c>[Sublayer(Norm = …)]</c>): <c>NormKind.LayerNorm</c>
    /// (GPT-2, the default) or <c>NormKind.RmsNorm</c> (Llama, T5).</summary>
    public NormKind Norm { get; set; } = NormKind.LayerNorm;
    /// <summary>Binding: the norms' epsilon.</summary>
    public string NormEps { get; set; } = "1e-5";
    /// <summary>Binding: every sublayer reads the block's input and their outputs are added to it together,
    /// x + attn(norm₁(x)) + mlp(norm₂(x)) (GPT-NeoX's <c>use_parallel_residual</c>); "false" runs them in turn.</summary>
    public string ParallelResidual { get; set; } = "false";
}

/// <summary>Multi-head or grouped-query self-attention over <c>scaled_dot_product_attention</c>.</summary>
[AttributeUsage(AttributeTargets.Class, Inherited = false)]
public sealed class SelfAttentionAttribute(Type config) : Attribute
{
    /// <summary>The <c>[ModelConfig]</c> record bound from <c>config.json</c>; the string bindings of this class name its
    /// members. Every module of one model must use the same config type.</summary>
    public Type Config { get; } = config;
    /// <summary>Binding: the model (input and output) size.</summary>
    public string Dim { get; set; } = "";
    /// <summary>Binding: query heads.</summary>
    public string Heads { get; set; } = "";
    /// <summary>Binding: key/value heads (grouped-query attention); defaults to <see cref="Heads"/>.</summary>
    public string? KvHeads { get; set; }
    /// <summary>Binding: the head size; defaults to Dim / Heads, which must then divide.</summary>
    public string? HeadDim { get; set; }
    /// <summary>A token attends only to itself and earlier tokens.</summary>
    public bool Causal { get; set; }
    /// <summary>Apply the stack's rotary embedding to queries and keys.</summary>
    public bool Rotary { get; set; }
    /// <summary>Scale scores by 1/√head_dim (T5 does not).</summary>
    public bool Scaled { get; set; } = true;
    /// <summary>Checkpoint name of a T5 relative-position-bias table. Only the first layer of a stack has the
    /// table; its bias is shared by the later layers. Bidirectional unless <see cref="Causal"/>.</summary>
    public string? RelativeBias { get; set; }
    /// <summary>Binding: number of relative-position buckets.</summary>
    public string? RelativeBuckets { get; set; }
    /// <summary>Binding: the distance beyond which all positions share the last bucket.</summary>
    public string? RelativeMaxDistance { get; set; }
    /// <summary>Binding: sliding-window attention (Mistral's <c>sliding_window</c>): a query sees itself and the
    /// window − 1 positions before it; 0 for none. Causal attention only.</summary>
    public string? SlidingWindow { get; set; }

    /// <summary>Binding: dropout on the attention probabilities in training (GPT-2's <c>attn_pdrop</c>, T5's
    /// <c>dropout_rate</c>, Llama's <c>attention_dropout</c>); "0" (the default) for none.</summary>
    public string Dropout { get; set; } = "0";

    /// <summary>Checkpoint name of a per-head RMSNorm on the queries, over head_dim, before RoPE (Qwen3's
    /// <c>q_norm</c>); declare it with <see cref="KeyNorm"/>.</summary>
    public string? QueryNorm { get; set; }
    /// <summary>Checkpoint name of the per-head RMSNorm on the keys (Qwen3's <c>k_norm</c>).</summary>
    public string? KeyNorm { get; set; }
    /// <summary>Binding: the epsilon of <see cref="QueryNorm"/> and <see cref="KeyNorm"/>; "1e-6" by default.</summary>
    public string? HeadNormEps { get; set; }
    /// <summary>The kind of <see cref="QueryNorm"/> and <see cref="KeyNorm"/>: RmsNorm (Qwen3, the default) or GemmaRmsNorm
    /// (Gemma 3).</summary>
    public NormKind HeadNormKind { get; set; } = NormKind.RmsNorm;

    /// <summary>Binding: attention logit soft-capping before the mask and softmax, scores = cap × tanh(scores / cap)
    /// (Gemma 2's <c>attn_logit_softcapping</c>); "0" (the default) for none. SDPA cannot cap, so a capped layer runs
    /// its own attention kernel. Bind a non-nullable member that gives 0 for null.</summary>
    public string Softcap { get; set; } = "0";
    /// <summary>Binding: scale scores by QueryScalar^-0.5 instead of head_dim^-0.5 (Gemma's
    /// <c>query_pre_attn_scalar</c>).</summary>
    public string? QueryScalar { get; set; }
    /// <summary>Binding, a <c>string[]</c> member: each layer's attention type, as transformers' <c>layer_types</c>
    /// ("full_attention" or "sliding_attention"; give the family's default rule in the config record). Only
    /// "sliding_attention" layers apply <see cref="SlidingWindow"/>, which must be declared, and use the stack's
    /// local rotary tables when it has them (<c>[RotaryEmbedding(LocalTheta)]</c>).</summary>
    public string? LayerTypes { get; set; }
}

/// <summary>Decoder cross-attention: queries from the decoder, keys and values from the encoder output
/// (computed once per sequence when decoding with a cache).</summary>
[AttributeUsage(AttributeTargets.Class, Inherited = false)]
public sealed class CrossAttentionAttribute(Type config) : Attribute
{
    /// <summary>The <c>[ModelConfig]</c> record bound from <c>config.json</c>; the string bindings of this class name its
    /// members. Every module of one model must use the same config type.</summary>
    public Type Config { get; } = config;
    /// <summary>Binding: the model size.</summary>
    public string Dim { get; set; } = "";
    /// <summary>Binding: heads.</summary>
    public string Heads { get; set; } = "";
    /// <summary>Binding: the head size; defaults to Dim / Heads.</summary>
    public string? HeadDim { get; set; }
    /// <summary>Scale scores by 1/√head_dim (T5 does not).</summary>
    public bool Scaled { get; set; } = true;

    /// <summary>Binding: dropout on the attention probabilities in training (GPT-2's <c>attn_pdrop</c>, T5's
    /// <c>dropout_rate</c>, Llama's <c>attention_dropout</c>); "0" (the default) for none.</summary>
    public string Dropout { get; set; } = "0";
}

/// <summary>A position-wise MLP: plain (up → act → down) or gated (act(gate) × up → down) when a
/// <see cref="ProjectionRole.Gate"/> projection is declared.</summary>
[AttributeUsage(AttributeTargets.Class, Inherited = false)]
public sealed class FeedForwardAttribute(Type config) : Attribute
{
    /// <summary>The <c>[ModelConfig]</c> record bound from <c>config.json</c>; the string bindings of this class name its
    /// members. Every module of one model must use the same config type.</summary>
    public Type Config { get; } = config;
    /// <summary>Binding: the model size.</summary>
    public string Dim { get; set; } = "";
    /// <summary>Binding: the inner (intermediate) size.</summary>
    public string Inner { get; set; } = "";
    /// <summary>Binding: a Hugging Face activation name (<c>gelu_new</c>, <c>silu</c>, <c>relu</c>, …) or a config member holding one.</summary>
    public string Activation { get; set; } = "";

    /// <summary>Binding: dropout on the inner activation, before the down projection, in training (T5's
    /// <c>dropout_rate</c>); "0" (the default) for none.</summary>
    public string Dropout { get; set; } = "0";
}
