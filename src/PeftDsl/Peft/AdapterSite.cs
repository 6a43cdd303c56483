using static TorchSharp.torch;

namespace PeftDsl.Peft;

/// <summary>
/// Where a bottleneck adapter goes: on a sublayer's output, before the residual add. With nothing attached
/// it returns its input, so a base model pays one call per sublayer and no tensor op.
/// </summary>
public sealed class AdapterSite(string name, int layer)
{
    public string Name { get; } = name;

    public int Layer { get; } = layer;

    public Tensor Apply(Tensor sublayerOutput) => sublayerOutput;
}
