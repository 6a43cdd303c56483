using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftDsl.Peft;

/// <summary>One adapter tensor held as a module with a single <c>weight</c>, as peft holds <c>lora_A.{adapter}</c>
/// (an <c>nn.Linear</c> without bias) or DoRA's magnitude vector: state-dict keys end in <c>.weight</c>.</summary>
public sealed class AdapterWeight : nn.Module
{
    public AdapterWeight(Tensor value) : base(nameof(AdapterWeight))
    {
        weight = Modules.OwnedParameter.Of(value);
        register_parameter("weight", weight);
    }

    public readonly Parameter weight;

    protected override void RegisterComponents()
    {
    }
}
