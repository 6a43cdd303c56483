using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftDsl.Peft;

/// <summary>One adapter tensor held as a module with a single <c>weight</c>, as peft holds <c>lora_A.{adapter}</c>
/// (an <c>nn.Linear</c> without bias) or DoRA's magnitude vector: state-dict keys end in <c>.weight</c>.</summary>
public sealed class AdapterWeight : nn.Module
{
    /// <summary>Takes <paramref name="value"/> as the module's <c>weight</c> parameter (not copied: it leaves the caller's dispose scope).</summary>
    public AdapterWeight(Tensor value) : base(nameof(AdapterWeight))
    {
        weight = Modules.OwnedParameter.Of(value);
        register_parameter("weight", weight);
    }

    /// <summary>The adapter tensor: LoRA's A (r, in) or B (out, r), or DoRA's magnitude (out).</summary>
    public readonly Parameter weight;

    /// <summary>Empty on purpose: <c>weight</c> is registered explicitly in the constructor, not by TorchSharp's field reflection.</summary>
    protected override void RegisterComponents()
    {
    }
}
