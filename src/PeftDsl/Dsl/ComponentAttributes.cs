namespace PeftDsl.Dsl;

// Components: the submodules of a DSL class. The first argument is always the checkpoint name relative to
// the module (state-dict keys are the contract: `transformer.h.0.attn.c_attn.weight`). Dotted names create
// plain container nodes, so T5's `layer.0.SelfAttention` needs no extra classes.

/// <summary>[CausalLM] The body stack, e.g. <c>transformer</c> or <c>model</c>.</summary>
[AttributeUsage(AttributeTargets.Class, Inherited = false)]
public sealed class BodyAttribute(string name, Type module) : Attribute
{
    /// <summary>Checkpoint name of the body under the root (<c>transformer</c> for GPT-2, <c>model</c> for Llama);
    /// the prefix of every body key and the <c>BasePrefix</c> a bare-body checkpoint may lack.</summary>
    public string Name { get; } = name;
    /// <summary>The <c>[TransformerStack]</c> class that implements the body (<c>typeof(Gpt2Model)</c>).</summary>
    public Type Module { get; } = module;
}

/// <summary>[Seq2SeqLM] The token embedding shared by the encoder, the decoder and (when tied) the head: T5's <c>shared</c>.</summary>
[AttributeUsage(AttributeTargets.Class, Inherited = false)]
public sealed class SharedEmbeddingAttribute(string name) : Attribute
{
    /// <summary>Checkpoint name of the shared table under the root (T5: <c>shared</c>, saved as <c>shared.weight</c>).</summary>
    public string Name { get; } = name;
    /// <summary>Binding: vocabulary size.</summary>
    public string Vocab { get; set; } = "";
    /// <summary>Binding: hidden size.</summary>
    public string Dim { get; set; } = "";
}

/// <summary>[Seq2SeqLM] The encoder stack.</summary>
[AttributeUsage(AttributeTargets.Class, Inherited = false)]
public sealed class EncoderAttribute(string name, Type module) : Attribute
{
    /// <summary>Checkpoint name of the encoder stack under the root (T5: <c>encoder</c>).</summary>
    public string Name { get; } = name;
    /// <summary>The <c>[TransformerStack]</c> class of the encoder (its blocks have no cross-attention).</summary>
    public Type Module { get; } = module;
}

/// <summary>[Seq2SeqLM] The decoder stack (its blocks have cross-attention).</summary>
[AttributeUsage(AttributeTargets.Class, Inherited = false)]
public sealed class DecoderAttribute(string name, Type module) : Attribute
{
    /// <summary>Checkpoint name of the decoder stack under the root (T5: <c>decoder</c>).</summary>
    public string Name { get; } = name;
    /// <summary>The <c>[TransformerStack]</c> class of the decoder; its blocks declare a <c>[CrossAttention]</c> sublayer.</summary>
    public Type Module { get; } = module;
}

/// <summary>[CausalLM, Seq2SeqLM] The output projection to the vocabulary.</summary>
[AttributeUsage(AttributeTargets.Class, Inherited = false)]
public sealed class LmHeadAttribute(string name) : Attribute
{
    /// <summary>Checkpoint name of the head under the root (<c>lm_head</c>); a tied head has no weight saved under it.</summary>
    public string Name { get; } = name;
    /// <summary>Checkpoint path of the embedding the head may share its weight with (<c>transformer.wte</c>).</summary>
    public string? TiedTo { get; set; }
    /// <summary>Binding: whether the weight is shared; defaults to "true" when <see cref="TiedTo"/> is set.</summary>
    public string? Tie { get; set; }
    /// <summary>Binding: multiply the hidden states by dim^-0.5 before the head (T5 with tied embeddings).</summary>
    public string Scale { get; set; } = "false";
    /// <summary>Binding: final logit soft-capping, logits = cap × tanh(logits / cap) (Gemma 2's
    /// <c>final_logit_softcapping</c>); "0" (the default) for none. Bind a non-nullable member that gives 0 for null.</summary>
    public string Softcap { get; set; } = "0";
}

/// <summary>[TransformerStack] Token embedding; also the virtual-prompt site where prompt learning prepends tokens.</summary>
[AttributeUsage(AttributeTargets.Class, Inherited = false)]
public sealed class TokenEmbeddingAttribute(string name) : Attribute
{
    /// <summary>Checkpoint name of the table under the stack (GPT-2: <c>wte</c>, Llama: <c>embed_tokens</c>).</summary>
    public string Name { get; } = name;
    /// <summary>Binding: vocabulary size (unused when <see cref="Shared"/>).</summary>
    public string Vocab { get; set; } = "";
    /// <summary>Use the root's <c>[SharedEmbedding]</c> instead of an own table; it is not saved under this name.</summary>
    public bool Shared { get; set; }
    /// <summary>Whether prompt learning may prepend virtual tokens here (T5: the encoder yes, the decoder no).</summary>
    public bool VirtualPrompts { get; set; } = true;
    /// <summary>Multiply the embeddings by √hidden, in their dtype (Gemma): in the embedding module
    /// (<see cref="EmbeddingScale.Tokens"/>, Gemma 3) or on the stack's input, virtual tokens included
    /// (<see cref="EmbeddingScale.Inputs"/>, Gemma 2). Not with <see cref="Shared"/>.</summary>
    public EmbeddingScale Scale { get; set; } = EmbeddingScale.None;
}

/// <summary>[TransformerStack] Learned absolute positions added to the token embedding (GPT-2's <c>wpe</c>).</summary>
[AttributeUsage(AttributeTargets.Class, Inherited = false)]
public sealed class PositionEmbeddingAttribute(string name) : Attribute
{
    /// <summary>Checkpoint name of the [max positions, hidden] table under the stack (GPT-2: <c>wpe</c>).</summary>
    public string Name { get; } = name;
    /// <summary>Binding: the number of positions.</summary>
    public string MaxPositions { get; set; } = "";
}

/// <summary>[TransformerStack] Rotary position embedding (RoPE), computed once per forward and shared by all
/// attention layers declared with <c>Rotary = true</c>. It has no weights.</summary>
[AttributeUsage(AttributeTargets.Class, Inherited = false)]
public sealed class RotaryEmbeddingAttribute : Attribute
{
    /// <summary>Binding: the rotated head size.</summary>
    public string HeadDim { get; set; } = "";
    /// <summary>Binding: the base θ.</summary>
    public string Theta { get; set; } = "10000";
    /// <summary>Binding: the scaling scheme: "default"; "llama3" (which needs the four llama3 bindings below);
    /// "linear" (<see cref="ScalingFactor"/>); "longrope" or its old name "su" (<see cref="ShortFactor"/>,
    /// <see cref="LongFactor"/>, <see cref="OriginalMaxPositions"/>, and <see cref="ScalingFactor"/> or
    /// <see cref="MaxPositions"/>). "dynamic" and "yarn" are not computed.</summary>
    public string RopeType { get; set; } = "default";
    /// <summary>Binding: the rotated share of each head (GPT-NeoX's <c>rotary_pct</c>, <c>partial_rotary_factor</c>);
    /// the first int(head size × fraction) features rotate, the rest pass through.</summary>
    public string Fraction { get; set; } = "1";
    /// <summary>Binding (rope_type llama3, linear, longrope): <c>factor</c>.</summary>
    public string? ScalingFactor { get; set; }
    /// <summary>Binding (rope_type llama3): <c>low_freq_factor</c>.</summary>
    public string? LowFreqFactor { get; set; }
    /// <summary>Binding (rope_type llama3): <c>high_freq_factor</c>.</summary>
    public string? HighFreqFactor { get; set; }
    /// <summary>Binding (rope_type llama3, longrope): <c>original_max_position_embeddings</c>.</summary>
    public string? OriginalMaxPositions { get; set; }
    /// <summary>Binding, a <c>double[]</c> member (rope_type longrope): <c>short_factor</c>, one per rotated pair, used
    /// while a pass stays within the original context.</summary>
    public string? ShortFactor { get; set; }
    /// <summary>Binding, a <c>double[]</c> member (rope_type longrope): <c>long_factor</c>, used by a pass that reaches
    /// past the original context.</summary>
    public string? LongFactor { get; set; }
    /// <summary>Binding (rope_type longrope): <c>attention_factor</c>, which multiplies cos and sin; 0 or absent derives
    /// it as transformers does.</summary>
    public string? AttentionFactor { get; set; }
    /// <summary>Binding: θ of separate, unscaled tables for the sliding-window attention layers (Gemma 3's
    /// <c>rope_local_base_freq</c>); without it every layer uses the same tables.</summary>
    public string? LocalTheta { get; set; }
    /// <summary>Binding: the positions the checkpoint was trained for (<c>max_position_embeddings</c>; after Llama 3's
    /// scaling, the scaled context). Rotary positions go on past it, but the model never saw them: generation refuses
    /// to go past unless asked. Optional; without it generation is unbounded.</summary>
    public string? MaxPositions { get; set; }
}

/// <summary>[TransformerStack] N copies of a block class in a list named <paramref name="name"/>.</summary>
[AttributeUsage(AttributeTargets.Class, Inherited = false)]
public sealed class BlocksAttribute(string name, Type block) : Attribute
{
    /// <summary>Checkpoint name of the block list under the stack; block i is saved as <c>{name}.{i}</c>
    /// (GPT-2: <c>h</c>, Llama: <c>layers</c>, T5: <c>block</c>).</summary>
    public string Name { get; } = name;
    /// <summary>The <c>[TransformerBlock]</c> class each block is an instance of; block i is built with layer index i.</summary>
    public Type Block { get; } = block;
    /// <summary>Binding: how many blocks.</summary>
    public string Count { get; set; } = "";
}

/// <summary>[TransformerStack] The norm after the last block.</summary>
[AttributeUsage(AttributeTargets.Class, Inherited = false)]
public sealed class FinalNormAttribute(string name, NormKind kind) : Attribute
{
    /// <summary>Checkpoint name of the norm under the stack (GPT-2: <c>ln_f</c>, Llama: <c>norm</c>, T5: <c>final_layer_norm</c>).</summary>
    public string Name { get; } = name;
    /// <summary><c>NormKind.LayerNorm</c> (weight and bias) or <c>NormKind.RmsNorm</c> (weight only).</summary>
    public NormKind Kind { get; } = kind;
    /// <summary>Binding: epsilon.</summary>
    public string Eps { get; set; } = "1e-5";

    /// <summary>Binding: dropout on the norm's output in training (T5's <c>dropout_rate</c>); "0" (the default) for none.</summary>
    public string Dropout { get; set; } = "0";
}

/// <summary>[TransformerBlock] A residual sublayer: x + Adapter(Sublayer(Norm(x))) in the pre-norm layout.
/// Its kind (self-attention, cross-attention, feed-forward) comes from the referenced class. In a block with a
/// parallel residual, sublayers may name the same norm (one norm, GPT-J/Falcon style).</summary>
[AttributeUsage(AttributeTargets.Class, AllowMultiple = true, Inherited = false)]
public sealed class SublayerAttribute(string name, Type module) : Attribute
{
    /// <summary>Checkpoint name of the sublayer under the block; may be dotted (T5: <c>layer.0.SelfAttention</c>).</summary>
    public string Name { get; } = name;
    /// <summary>The class that computes the sublayer: a <c>[SelfAttention]</c>, <c>[CrossAttention]</c> or <c>[FeedForward]</c>
    /// class; its kind decides where the sublayer runs in the block.</summary>
    public Type Module { get; } = module;
    /// <summary>Checkpoint name of the norm in front of the sublayer.</summary>
    public string Norm { get; set; } = "";
    /// <summary>Checkpoint name of a norm on the sublayer's output, before its adapter site and the residual add:
    /// x + Adapter(PostNorm(Sublayer(Norm(x)))) (Gemma 2/3's <c>post_attention_layernorm</c> and
    /// <c>post_feedforward_layernorm</c>). It is of the block's norm kind.</summary>
    public string? PostNorm { get; set; }

    /// <summary>Binding: dropout on what the sublayer adds to the residual stream (its output after the adapter site),
    /// in training (GPT-2's <c>resid_pdrop</c>, T5's <c>dropout_rate</c>, GPT-NeoX's <c>hidden_dropout</c>); "0" (the
    /// default) for none.</summary>
    public string Dropout { get; set; } = "0";
}

/// <summary>[SelfAttention, FeedForward] A linear layer. Every projection is a PEFT linear site, selectable by
/// its checkpoint name (peft's <c>target_modules</c>) and by the NeMo name its role implies.</summary>
[AttributeUsage(AttributeTargets.Class, AllowMultiple = true, Inherited = false)]
public sealed class ProjectionAttribute(string name, ProjectionRole role) : Attribute
{
    /// <summary>Checkpoint name of the linear layer under the module (<c>c_attn</c>, <c>q_proj</c>, <c>wi_0</c>); also how
    /// peft's <c>target_modules</c> selects it.</summary>
    public string Name { get; } = name;
    /// <summary>What the projection computes; fixes its input and output sizes, its place in the forward pass and its
    /// NeMo site name (<c>attention_qkv</c>, <c>attention_dense</c>, <c>mlp_fc1</c>, <c>mlp_fc2</c>).</summary>
    public ProjectionRole Role { get; } = role;
    /// <summary>How the checkpoint stores the weight: <c>WeightLayout.Linear</c> ([out, in], the default) or
    /// <c>WeightLayout.Conv1D</c> ([in, out], GPT-2; transposed on load and back on save).</summary>
    public WeightLayout Layout { get; set; } = WeightLayout.Linear;
    /// <summary>For a fused <see cref="ProjectionRole.Qkv"/> projection: how its output is ordered.</summary>
    public QkvLayout QkvLayout { get; set; } = QkvLayout.Blocks;
    /// <summary>Binding: whether the projection has a bias.</summary>
    public string Bias { get; set; } = "false";
    /// <summary>Binding: the projection exists only when this flag is true; prefix "!" to negate. T5 has
    /// <c>wi</c> when not gated and <c>wi_0</c>/<c>wi_1</c> when gated, under one <c>model_type</c>.</summary>
    public string? When { get; set; }
}
