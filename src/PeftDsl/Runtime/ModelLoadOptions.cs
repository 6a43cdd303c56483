using static TorchSharp.torch;

namespace PeftDsl.Runtime;

/// <summary>Options for <c>FromPretrained</c>.</summary>
/// <param name="DType">Parameter dtype (Float32, BFloat16, Float16); checkpoint tensors are converted. Default fp32, as transformers.</param>
/// <param name="Device">Where the model lives; default CPU.</param>
/// <param name="Quantize">4-bit projections (QLoRA's base; <see cref="Quantization.FourBitModel"/>), quantized tensor by
/// tensor while loading; <see cref="DType"/> is then the compute dtype. Null keeps full precision.</param>
public sealed record ModelLoadOptions(ScalarType DType = ScalarType.Float32, Device? Device = null, Quantization.FourBitOptions? Quantize = null)
{
    /// <summary>fp32 on the CPU.</summary>
    public static readonly ModelLoadOptions Default = new();
}
