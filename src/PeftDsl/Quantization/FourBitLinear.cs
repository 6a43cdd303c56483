using PeftDsl.Runtime;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace PeftDsl.Quantization;

/// <summary>
/// y = x Wᵀ + b on a 4-bit weight, as bitsandbytes' <c>MatMul4Bit</c>: W is dequantized to the input's dtype for the
/// matmul and freed at once, and dequantized again in backward for the input's gradient, so no full-precision weight
/// outlives its matmul. The frozen base takes no gradient. Ops per call, in forward and again in backward: 7 kernels
/// to dequantize (nibbles to int64, high and low nibble, interleave, code look-up, scale per block, cast) and about 6
/// views, 4 more kernels to decode double-quantized scales, then one matmul (docs/memory.md).
/// </summary>
public static class FourBitLinear
{
    /// <summary>The projection of <paramref name="x"/> (…, in) by <paramref name="weight"/> [out, in] and <paramref name="bias"/>.</summary>
    public static Tensor Forward(Tensor x, FourBitWeight weight, Tensor? bias)
    {
        if (!is_grad_enabled() || !x.requires_grad)
        {
            using var dense = weight.Dequantize(x.dtype);
            return F.linear(x, dense, bias);
        }
        return Function.apply(x, weight, bias!);
    }

    private sealed class Function : autograd.SingleTensorFunction<Function>
    {
        public override string Name => "FourBitLinear";

        /// <param name="vars">The input, the <see cref="FourBitWeight"/>, the bias (or null).</param>
        public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
        {
            var (x, weight) = ((Tensor)vars[0], (FourBitWeight)vars[1]);
            ctx.save_data("weight", weight);
            using var dense = weight.Dequantize(x.dtype);
            return F.linear(x, dense, vars[2] as Tensor);
        }

        public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor gradOutput)
        {
            try
            {
                var weight = (FourBitWeight)ctx.get_data("weight");
                using var dense = weight.Dequantize(gradOutput.dtype);
                return [gradOutput.matmul(dense), null!, null!];
            }
            catch (Exception e)
            {
                Autograd.Fail(e);
                return [null!, null!, null!];
            }
        }
    }
}
