using PeftDsl.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftDsl.Peft;

/// <summary>
/// Where a bottleneck adapter goes: on a sublayer's output, before the residual add. It is registered under its
/// site name (<c>transformer.h.0.mlp_adapter</c>), so adapter weights put here are seen by <c>parameters()</c> and
/// <c>to(device)</c> and kept out of the base checkpoint. With nothing attached it returns its input: a base model
/// pays one call per sublayer and no tensor op.
/// </summary>
public sealed class AdapterSite : nn.Module<Tensor, ForwardContext, Tensor>, IPeftTensors
{
    public AdapterSite(string name, int layer) : base(nameof(AdapterSite))
    {
        Name = name;
        Layer = layer;
    }

    public string Name { get; }

    public int Layer { get; }

    public override Tensor forward(Tensor sublayerOutput, ForwardContext ctx) => sublayerOutput;

    protected override void RegisterComponents()
    {
    }
}
