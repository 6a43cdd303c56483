using PeftDsl.Runtime;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace PeftDsl.Quantization;

/// <summary>
/// y = x Wᵀ + b on a 4-bit weight, as bitsandbytes' <c>MatMul4Bit</c>: W is dequantized to the input's dtype for the
/// matmul and freed at once, and dequantized again in backward for the input's gradient, so no full-precision weight
/// outlives its matmul. The frozen base takes no gradient. Ops per call, in forward and again in backward: 4 kernels
/// to dequantize (4 more for double-quantized scales; <see cref="FourBitWeight.Dequantize"/>), then one matmul.
/// On the CPU a bf16 or fp16 matmul runs in fp32 on the same (rounded) operands, rounded back once: what a bf16 GEMM
/// with fp32 accumulation computes. libtorch's CPU bf16 GEMM without AVX-512 BF16 is slow, and its g·W (the input's
/// gradient) slower still: measured on the 2-core AVX2 EPYC, (128 × 4096)·(4096 × 4096) took 325 ms as a bf16 linear,
/// 15.0 s as a bf16 matmul, 54 ms in fp32 with the casts (docs/memory.md).
/// </summary>
public static class FourBitLinear
{
    /// <summary>The projection of <paramref name="x"/> (…, in) by <paramref name="weight"/> [out, in] and <paramref name="bias"/>.</summary>
    public static Tensor Forward(Tensor x, FourBitWeight weight, Tensor? bias)
    {
        if (!is_grad_enabled() || !x.requires_grad) return Linear(x, weight, bias);
        return Function.apply(x, weight, bias!);
    }

    /// <summary>On the CPU, bf16 and fp16 matmuls run in fp32 (see the class remarks); elsewhere in their own dtype.</summary>
    private static ScalarType MatmulDType(Tensor x) =>
        x.device.type == DeviceType.CPU && x.dtype is ScalarType.BFloat16 or ScalarType.Float16 ? ScalarType.Float32 : x.dtype;

    /// <summary>The weight dequantized to <paramref name="dtype"/> (bitsandbytes' values), then widened for the matmul.</summary>
    private static Tensor Dense(FourBitWeight weight, ScalarType dtype, ScalarType matmul)
    {
        var dense = weight.Dequantize(dtype);
        if (matmul == dtype) return dense;
        using (dense) return dense.to(matmul);
    }

    private static Tensor Linear(Tensor x, FourBitWeight weight, Tensor? bias)
    {
        var matmul = MatmulDType(x);
        using var dense = Dense(weight, x.dtype, matmul);
        if (matmul == x.dtype) return F.linear(x, dense, bias);
        using var scope = NewDisposeScope();
        return F.linear(x.to(matmul), dense, bias?.to(matmul)).to(x.dtype).MoveToOuterDisposeScope();
    }

    private sealed class Function : autograd.SingleTensorFunction<Function>
    {
        public override string Name => "FourBitLinear";

        /// <param name="vars">The input, the <see cref="FourBitWeight"/>, the bias (or null).</param>
        public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
        {
            var (x, weight) = ((Tensor)vars[0], (FourBitWeight)vars[1]);
            ctx.save_data("weight", weight);
            return Linear(x, weight, vars[2] as Tensor);
        }

        public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor gradOutput)
        {
            try
            {
                var weight = (FourBitWeight)ctx.get_data("weight");
                var matmul = MatmulDType(gradOutput);
                using var dense = Dense(weight, gradOutput.dtype, matmul);
                if (matmul == gradOutput.dtype) return [gradOutput.matmul(dense), null!, null!];
                using var scope = NewDisposeScope();
                return [gradOutput.to(matmul).matmul(dense).to(gradOutput.dtype).MoveToOuterDisposeScope(), null!, null!];
            }
            catch (Exception e)
            {
                Autograd.Fail(e);
                return [null!, null!, null!];
            }
        }
    }
}
