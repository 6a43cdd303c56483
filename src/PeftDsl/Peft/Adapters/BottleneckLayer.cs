using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftDsl.Peft.Adapters;

/// <summary>
/// One bottleneck adapter at one site: <c>layer_norm</c> (optional), <c>linear_in</c> [adapter_dim, dim] (no bias),
/// the activation, <c>linear_out</c> [dim, adapter_dim] (no bias, zero-initialised) and dropout, NeMo's names and
/// shapes. <see cref="Delta"/> is what the site adds to the sublayer's output.
/// </summary>
public sealed class BottleneckLayer : nn.Module
{
    private readonly BottleneckConfig config;

    /// <summary>Builds the layer; <c>linear_out</c> starts at zero, so the new adapter adds nothing.</summary>
    /// <param name="dim">The sublayer's width C (the attention output projection's out features).</param>
    /// <param name="config">Width, activation, norm, init, dropout and placement.</param>
    /// <param name="initialize">Draw <c>linear_in</c> as <c>config.Init</c> says; false when a file will overwrite it.</param>
    public BottleneckLayer(long dim, BottleneckConfig config, bool initialize) : base(nameof(BottleneckLayer))
    {
        this.config = config;
        linear_in = nn.Linear(dim, config.AdapterDim, hasBias: false);
        linear_out = nn.Linear(config.AdapterDim, dim, hasBias: false);
        if (config.Norm != BottleneckNorm.None)
        {
            layer_norm = nn.LayerNorm(dim);
            register_module("layer_norm", layer_norm);
        }
        register_module("linear_in", linear_in);
        register_module("linear_out", linear_out);
        using var noGrad = no_grad();
        if (initialize)
        {
            switch (config.Init)
            {
                case BottleneckInit.Xavier: nn.init.xavier_normal_(linear_in.weight); break;
                case BottleneckInit.Normal: nn.init.normal_(linear_in.weight, 0, 0.02); break;
                case BottleneckInit.Kaiming: nn.init.kaiming_normal_(linear_in.weight); break;
                case BottleneckInit.Zero: linear_in.weight.zero_(); break;
            }
        }
        linear_out.weight.zero_();   // a new adapter is the identity
    }

    /// <summary>The down projection, weight [adapter_dim, dim], no bias (NeMo's <c>linear_in</c>).</summary>
    public readonly Linear linear_in;

    /// <summary>The up projection, weight [dim, adapter_dim], no bias, zero-initialised (NeMo's <c>linear_out</c>).</summary>
    public readonly Linear linear_out;

    /// <summary>The adapter's LayerNorm over dim (weight and bias), or null when the config's norm is <c>None</c>.</summary>
    public readonly LayerNorm? layer_norm;

    /// <param name="output">(…, dim) the sublayer's output.</param>
    /// <param name="input">(…, dim) the sublayer's input: a parallel adapter reads it instead.</param>
    /// <param name="outputBias">(dim) the bias of the sublayer's output projection, or null: NeMo's placement reads the
    /// output without it.</param>
    /// <returns>(…, dim) what the adapter adds to the sublayer's output.</returns>
    public Tensor Delta(Tensor output, Tensor input, Tensor? outputBias = null)
    {
        using var scope = NewDisposeScope();
        var h = config.Placement switch
        {
            BottleneckPlacement.Parallel => input,
            BottleneckPlacement.Nemo when outputBias is not null => output - outputBias,
            _ => output,
        };
        // fp32 adapter on a bf16 base: computed in the adapter's dtype (the caller rounds the sum back once).
        if (h.dtype != linear_in.weight.dtype) h = h.to(linear_in.weight.dtype);
        var z = config.Norm == BottleneckNorm.Pre ? layer_norm!.forward(h) : h;
        z = linear_in.forward(z);
        z = config.Activation switch
        {
            BottleneckActivation.Swish => nn.functional.silu(z),
            BottleneckActivation.Gelu => nn.functional.gelu(z),
            BottleneckActivation.Relu => nn.functional.relu(z),
            _ => z,
        };
        z = linear_out.forward(z);
        if (config.Norm == BottleneckNorm.Post) z = layer_norm!.forward(z);
        if (training && config.Dropout > 0) z = nn.functional.dropout(z, config.Dropout, training: true);
        return z.MoveToOuterDisposeScope();
    }

    /// <summary>Empty on purpose: children are registered explicitly (<c>register_module</c>), not by TorchSharp's field reflection.</summary>
    protected override void RegisterComponents()
    {
    }
}
