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
    public Type Config { get; } = config;
    /// <summary>The checkpoint's <c>model_type</c> in config.json (<c>gpt2</c>, <c>llama</c>).</summary>
    public string? ModelType { get; set; }
    /// <summary>Regexes of checkpoint keys to ignore when loading (stale buffers such as GPT-2's <c>attn.bias</c>).</summary>
    public string[]? IgnoreUnexpectedKeys { get; set; }
}

/// <summary>Embeddings, N stacked blocks, a final norm: GPT-2's <c>transformer</c>, Llama's <c>model</c>.</summary>
[AttributeUsage(AttributeTargets.Class, Inherited = false)]
public sealed class TransformerStackAttribute(Type config) : Attribute
{
    public Type Config { get; } = config;
    /// <summary>Binding: the hidden size.</summary>
    public string Dim { get; set; } = "";
}

/// <summary>One residual block. Sublayers run in the order self-attention, cross-attention, feed-forward.</summary>
[AttributeUsage(AttributeTargets.Class, Inherited = false)]
public sealed class TransformerBlockAttribute(Type config) : Attribute
{
    public Type Config { get; } = config;
    /// <summary>Binding: the hidden size.</summary>
    public string Dim { get; set; } = "";
    public NormKind Norm { get; set; } = NormKind.LayerNorm;
    /// <summary>Binding: the norms' epsilon.</summary>
    public string NormEps { get; set; } = "1e-5";
}

/// <summary>Multi-head or grouped-query self-attention over <c>scaled_dot_product_attention</c>.</summary>
[AttributeUsage(AttributeTargets.Class, Inherited = false)]
public sealed class SelfAttentionAttribute(Type config) : Attribute
{
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
}

/// <summary>A position-wise MLP: plain (up → act → down) or gated (act(gate) × up → down) when a
/// <see cref="ProjectionRole.Gate"/> projection is declared.</summary>
[AttributeUsage(AttributeTargets.Class, Inherited = false)]
public sealed class FeedForwardAttribute(Type config) : Attribute
{
    public Type Config { get; } = config;
    /// <summary>Binding: the model size.</summary>
    public string Dim { get; set; } = "";
    /// <summary>Binding: the inner (intermediate) size.</summary>
    public string Inner { get; set; } = "";
    /// <summary>Binding: a Hugging Face activation name (<c>gelu_new</c>, <c>silu</c>, <c>relu</c>, …) or a config member holding one.</summary>
    public string Activation { get; set; } = "";
}
