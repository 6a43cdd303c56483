using PeftDsl.Errors;

namespace PeftDsl.Peft.Adapters;

/// <summary>The bottleneck's nonlinearity (NeMo's default is swish).</summary>
public enum BottleneckActivation { Swish, Gelu, Relu, Identity }

/// <summary>Where the adapter's own layer norm goes: none, before the down projection, or after the up projection.</summary>
public enum BottleneckNorm { None, Pre, Post }

/// <summary>Sequential: after the sublayer, on its output (Houlsby). Parallel: beside the sublayer, on the input the
/// sublayer sees, its delta added to the sublayer's output (He et al., 2022).</summary>
public enum BottleneckPlacement { Sequential, Parallel }

/// <summary>How the down projection starts (the up projection always starts at zero, so a new adapter is the identity).</summary>
public enum BottleneckInit { Xavier, Normal, Kaiming, Zero }

/// <summary>
/// A Houlsby bottleneck adapter, as NeMo's linear adapter: on a sublayer's output h, h + dropout(up(act(down(norm(h))))),
/// at the adapter sites the DSL declares (attention_adapter, mlp_adapter, cross_attention_adapter); or, parallel, the
/// same function of the sublayer's input x added beside it: h + dropout(up(act(down(norm(x))))).
/// </summary>
public sealed record BottleneckConfig
{
    public int AdapterDim { get; init; } = 32;

    public BottleneckActivation Activation { get; init; } = BottleneckActivation.Swish;

    public BottleneckNorm Norm { get; init; } = BottleneckNorm.Pre;

    public BottleneckInit Init { get; init; } = BottleneckInit.Xavier;

    public double Dropout { get; init; }

    public BottleneckPlacement Placement { get; init; } = BottleneckPlacement.Sequential;

    /// <summary>NeMo's <c>weight_tying</c>: one adapter per site name (attention, MLP, cross-attention), shared by every
    /// selected block, so the parameter count does not grow with depth. (NeMo's optional layer-position embeddings
    /// are not implemented.)</summary>
    public bool TieWeights { get; init; }

    /// <summary>Adapter site names; null for every site.</summary>
    public IReadOnlyList<string>? Sites { get; init; }

    /// <summary>Blocks to adapt; null for all.</summary>
    public IReadOnlyList<int>? Layers { get; init; }

    public string? TaskType { get; init; }

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
