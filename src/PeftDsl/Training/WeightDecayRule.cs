using System.Text.RegularExpressions;
using PeftDsl.Peft;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftDsl.Training;

/// <summary>
/// Which trainable tensors AdamW's weight decay shrinks. Hugging Face's Trainer exempts biases and norm weights
/// (<c>get_decay_parameter_names</c>: parameters of LayerNorm modules, and names matching <c>bias</c>, <c>layernorm</c>,
/// <c>rmsnorm</c>, <c>norm</c> as a segment or <c>_norm</c>). We also exempt the tensors that are scales, IA3's vectors
/// and DoRA's magnitudes: decaying a scale toward 0 pulls the model away from the base, not toward it.
/// </summary>
public static partial class WeightDecayRule
{
    [GeneratedRegex(@"bias|layernorm|rmsnorm|(?:^|\.)norm(?:$|\.)|_norm(?:$|\.)")]
    private static partial Regex NormOrBias();

    /// <summary>True when <paramref name="p"/> is decayed; <paramref name="normParameters"/> are the handles of the
    /// parameters that belong to norm modules (<see cref="NormParameters"/>).</summary>
    public static bool Decays(SelectedParameter p, IReadOnlySet<IntPtr> normParameters) =>
        p.Method != PeftMethod.Ia3
        && !p.Name.Contains("lora_magnitude_vector", StringComparison.Ordinal)
        && !NormOrBias().IsMatch(p.Name.ToLowerInvariant())
        && !normParameters.Contains(p.Parameter.Handle);

    /// <summary>The handles of every parameter of a norm module (LayerNorm, RMSNorm) in <paramref name="model"/>.</summary>
    public static IReadOnlySet<IntPtr> NormParameters(nn.Module model) =>
        Checkpoints.CheckpointLayout.ModulesWithRoot(model)
            .Where(m => m.Module is Modules.LayerNorm or Modules.RmsNorm or Modules.GemmaRmsNorm or TorchSharp.Modules.LayerNorm)
            .SelectMany(m => m.Module.parameters(recurse: false)).Select(p => p.Handle).ToHashSet();
}
