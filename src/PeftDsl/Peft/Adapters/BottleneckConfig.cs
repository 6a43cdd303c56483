using PeftDsl.Errors;

namespace PeftDsl.Peft.Adapters;

/// <summary>The bottleneck's nonlinearity (NeMo's default is swish).</summary>
public enum BottleneckActivation
{
    /// <summary>SiLU, x · sigmoid(x) (NeMo's <c>swish</c>, the default).</summary>
    Swish,
    /// <summary>GeLU (exact, erf-based).</summary>
    Gelu,
    /// <summary>ReLU, max(0, x).</summary>
    Relu,
    /// <summary>No nonlinearity between the two projections.</summary>
    Identity
}

/// <summary>Where the adapter's own layer norm goes: none, before the down projection, or after the up projection.</summary>
public enum BottleneckNorm
{
    /// <summary>No layer norm in the adapter (no <c>layer_norm</c> tensors).</summary>
    None,
    /// <summary>LayerNorm on the adapter's input, before <c>linear_in</c> (<c>norm_position</c> <c>pre</c>, the default).</summary>
    Pre,
    /// <summary>LayerNorm on the up projection's output, after <c>linear_out</c> (<c>norm_position</c> <c>post</c>).</summary>
    Post
}

/// <summary>Sequential: after the sublayer, on its output (Houlsby). Parallel: beside the sublayer, on the input the
/// sublayer sees, its delta added to the sublayer's output (He et al., 2022). Nemo: on the output before the output
/// projection's bias is added, as NeMo's Megatron layers place it.</summary>
public enum BottleneckPlacement
{
    /// <summary>On the sublayer's output h (its output projection's bias included): h + adapter(h) (Houlsby; the default).</summary>
    Sequential,
    /// <summary>On the sublayer's input x, beside the sublayer: h + adapter(x).</summary>
    Parallel,
    /// <summary>On the sublayer's output without its output projection's bias b: a + adapter(a) + b, where h = a + b.
    /// NeMo's Megatron projections return the bias apart (<c>skip_bias_add</c>), and its transformer layer applies the
    /// adapter before <c>bias_dropout_add</c> adds it. The same as <see cref="Sequential"/> where the projection has no bias.</summary>
    Nemo
}

/// <summary>How the down projection starts (the up projection always starts at zero, so a new adapter is the identity).</summary>
public enum BottleneckInit
{
    /// <summary><c>xavier_normal_</c> (the default).</summary>
    Xavier,
    /// <summary>N(0, 0.02).</summary>
    Normal,
    /// <summary><c>kaiming_normal_</c>.</summary>
    Kaiming,
    /// <summary>All zeros: refused by <c>BottleneckConfig.Validate</c>, since with the zero up projection neither
    /// matrix would ever get a gradient.</summary>
    Zero
}

/// <summary>
/// A Houlsby bottleneck adapter, as NeMo's linear adapter: on a sublayer's output h, h + dropout(up(act(down(norm(h))))),
/// at the adapter sites the DSL declares (attention_adapter, mlp_adapter, cross_attention_adapter); or, parallel, the
/// same function of the sublayer's input x added beside it: h + dropout(up(act(down(norm(x))))).
/// </summary>
public sealed record BottleneckConfig
{
    /// <summary>The bottleneck width: <c>linear_in</c> maps the model width C to it and <c>linear_out</c> back (JSON <c>adapter_dim</c>, NeMo's <c>dim</c>).</summary>
    public int AdapterDim { get; init; } = 32;

    /// <summary>The nonlinearity between the two projections (JSON <c>activation</c>).</summary>
    public BottleneckActivation Activation { get; init; } = BottleneckActivation.Swish;

    /// <summary>Where the adapter's own LayerNorm goes, if anywhere (JSON <c>norm_position</c>).</summary>
    public BottleneckNorm Norm { get; init; } = BottleneckNorm.Pre;

    /// <summary>How <c>linear_in</c> starts (JSON <c>init</c>); <c>linear_out</c> always starts at zero.</summary>
    public BottleneckInit Init { get; init; } = BottleneckInit.Xavier;

    /// <summary>Dropout probability on the adapter's output while training, in [0, 1) (JSON <c>adapter_dropout</c>).</summary>
    public double Dropout { get; init; }

    /// <summary>Sequential (on the sublayer's output), parallel (on its input) or NeMo's (on the output before its bias)
    /// (JSON <c>placement</c>).</summary>
    public BottleneckPlacement Placement { get; init; } = BottleneckPlacement.Sequential;

    /// <summary>NeMo's <c>weight_tying</c>: one adapter per site name (attention, MLP, cross-attention), shared by every
    /// selected block, so the parameter count does not grow with depth. (NeMo's optional layer-position embeddings
    /// are not implemented.)</summary>
    public bool TieWeights { get; init; }

    /// <summary>Adapter site names; null for every site.</summary>
    public IReadOnlyList<string>? Sites { get; init; }

    /// <summary>Blocks to adapt; null for all.</summary>
    public IReadOnlyList<int>? Layers { get; init; }

    /// <summary>peft's <c>task_type</c>, <c>CAUSAL_LM</c> or <c>SEQ_2_SEQ_LM</c>; set from the model when the adapter is added.</summary>
    public string? TaskType { get; init; }

    /// <summary>Refuses settings that cannot train (a non-positive or huge <c>adapter_dim</c>, dropout outside [0, 1), no site,
    /// zero init) and returns the config; <paramref name="source"/> names the file or option in the message.</summary>
    public BottleneckConfig Validate(string source)
    {
        if (AdapterDim <= 0 || AdapterDim > 1 << 16) throw new PeftDslException($"{source}: adapter_dim must be a positive whole number, got {AdapterDim}");
        if (!(Dropout >= 0 && Dropout < 1)) throw new PeftDslException($"{source}: adapter_dropout must be in [0, 1), got {Dropout}");
        if (Sites is { Count: 0 }) throw new PeftDslException($"{source}: the adapter names no site");
        if (Init == BottleneckInit.Zero)
            throw new PeftDslException($"{source}: a zero-initialised down projection with the zero-initialised up projection never trains (both gradients stay zero); use xavier, normal or kaiming");
        return this;
    }
}
