namespace PeftDsl.Dsl;

/// <summary>What a projection computes inside its module; the generator derives shapes, the forward
/// pass and the PEFT site names (NeMo's <c>attention_qkv</c>, <c>mlp_fc1</c>, …) from it.</summary>
public enum ProjectionRole
{
    /// <summary>Fused query/key/value, as GPT-2's <c>c_attn</c>: out = (heads + 2 × kv heads) × head dim.</summary>
    Qkv,
    /// <summary>Separate query projection (Llama's <c>q_proj</c>, T5's <c>q</c>): dim → heads × head dim.</summary>
    Query,
    /// <summary>Separate key projection (<c>k_proj</c>): dim → kv heads × head dim.</summary>
    Key,
    /// <summary>Separate value projection (<c>v_proj</c>): dim → kv heads × head dim.</summary>
    Value,
    /// <summary>Fused key/value (T5-style cross-attention in some checkpoints).</summary>
    KeyValue,
    /// <summary>The attention output projection (NeMo: <c>attention_dense</c>).</summary>
    Output,
    /// <summary>The gate half of a gated MLP (SwiGLU/GeGLU): act(gate(x)) × up(x).</summary>
    Gate,
    /// <summary>The MLP input projection (NeMo: <c>mlp_fc1</c>).</summary>
    Up,
    /// <summary>The MLP output projection (NeMo: <c>mlp_fc2</c>).</summary>
    Down,
    /// <summary>Fused gate and up projections, as Phi-3's <c>gate_up_proj</c>: out = 2 × inner, ordered [gate | up];
    /// the MLP computes act(gate) × up (NeMo: <c>mlp_fc1</c>).</summary>
    GateUp,
}

/// <summary>How a fused query/key/value projection orders its output.</summary>
public enum QkvLayout
{
    /// <summary>[all queries | all keys | all values] (GPT-2's <c>c_attn</c>).</summary>
    Blocks,
    /// <summary>Per key/value group: its query heads, its key head, its value head (GPT-NeoX's
    /// <c>query_key_value</c>, per head [q | k | v]; Falcon's grouped layout).</summary>
    Interleaved,
}

/// <summary>How a checkpoint stores a projection's weight.</summary>
public enum WeightLayout
{
    /// <summary><c>nn.Linear</c>: weight is [out, in].</summary>
    Linear,
    /// <summary>GPT-2's <c>Conv1D</c>: weight is [in, out]; transposed on load and back on save.</summary>
    Conv1D,
}

/// <summary>The normalisation a block or stack uses.</summary>
public enum NormKind
{
    /// <summary>LayerNorm with weight and bias (GPT-2).</summary>
    LayerNorm,
    /// <summary>RMSNorm: no mean, no bias, statistics in fp32 (Llama, T5).</summary>
    RmsNorm,
    /// <summary>Gemma's RMSNorm: x / rms(x) × (1 + weight), all in fp32 (Gemma 2 and 3); the stored weight is zeros for a
    /// scale of one.</summary>
    GemmaRmsNorm,
}

/// <summary>Whether and where the token embeddings are multiplied by √hidden (Gemma). The two places differ for
/// prompt learning, whose virtual tokens join between them.</summary>
public enum EmbeddingScale
{
    /// <summary>No scaling.</summary>
    None,
    /// <summary>The embedding module scales its own output (Gemma 3's scaled word embedding): virtual tokens enter
    /// unscaled, and prompt initialisation from vocabulary rows starts from scaled rows, as peft does.</summary>
    Tokens,
    /// <summary>The stack scales everything that enters it (Gemma 2's model forward): virtual tokens are scaled too.</summary>
    Inputs,
}
