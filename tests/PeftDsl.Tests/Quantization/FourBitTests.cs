using PeftDsl.Errors;
using PeftDsl.Models.Llama;
using PeftDsl.Peft;
using PeftDsl.Peft.Ia3;
using PeftDsl.Peft.Lora;
using PeftDsl.Quantization;
using PeftDsl.Runtime;
using Xunit;
using static TorchSharp.torch;

namespace PeftDsl.Tests.Quantization;

/// <summary>bitsandbytes' 4-bit format against hand computations: the code books, the nibble order, the blocks and
/// their scales, double quantization; then the 4-bit projection's gradients and LoRA on a 4-bit base against the
/// same math on the dequantized weights.</summary>
[Collection(GlobalRandomness.Name)]
public sealed class FourBitTests
{
    [Fact]
    public void TheCodeBooksAreBitsandbytes()
    {
        Assert.Equal(16, FourBitCodes.Nf4.Length);
        Assert.Equal(-1f, FourBitCodes.Nf4[0]);
        Assert.Equal(0f, FourBitCodes.Nf4[7]);
        Assert.Equal(1f, FourBitCodes.Nf4[15]);
        Assert.Equal(FourBitCodes.Nf4.Order(), FourBitCodes.Nf4);
        // FP4 in bit-pattern order: sign bit 3; 0b011 is 12, the largest, so it is 1 after normalising.
        Assert.Equal(1f, FourBitCodes.Fp4[3]);
        Assert.Equal(-1f, FourBitCodes.Fp4[11]);
        Assert.Equal(0.0625f / 12, FourBitCodes.Fp4[1]);
        Assert.Equal(0.5f, FourBitCodes.Fp4[5]);   // 0b101 = 6
        var dynamic = FourBitCodes.Dynamic8Bit();
        Assert.Equal(256, dynamic.Length);
        Assert.Equal(256, dynamic.Distinct().Count());
        Assert.Equal(dynamic.Order(), dynamic);
        Assert.Equal(1f, dynamic[^1]);
        Assert.Contains(0f, dynamic);
        // The last decade's 64 midpoints of linspace(0.1, 1, 65): the largest is (0.9859375 + 1) / 2.
        Assert.Equal(-0.99296875f, dynamic[0], 6);
        // The first decade is one midpoint, 0.55, times 10^-6.
        Assert.Equal(5.5e-7f, dynamic.Where(v => v > 0).Min(), 12);
    }

    [Fact]
    public void ABlockIsScaledByItsAbsmaxCodedToTheNearestValueAndPackedHighNibbleFirst()
    {
        // Block 1 (absmax 1): 1 → code 15, -1 → 0, 0.5 → 12 (0.4407 is nearer than 0.5626; the midpoint is 0.50166), 0 → 7.
        // Block 2 is the same values times 3: the same codes, absmax 3.
        var values = new float[128];
        float[] head = [1f, -1f, 0.5f, 0f];
        head.CopyTo(values, 0);
        head.Select(v => 3 * v).ToArray().CopyTo(values, 64);
        using var weight = tensor(values).view(2, 64);
        using var nf4 = FourBitWeight.Quantize(weight, FourBitType.Nf4, doubleQuant: false);
        var packed = nf4.Packed.data<byte>().ToArray();
        Assert.Equal([64L, 1L], nf4.Packed.shape);
        Assert.Equal(15 * 16 + 0, packed[0]);
        Assert.Equal(12 * 16 + 7, packed[1]);
        Assert.Equal(7 * 16 + 7, packed[2]);          // zeros
        Assert.Equal(15 * 16 + 0, packed[32]);
        Assert.Equal([1f, 3f], nf4.Absmax.data<float>().ToArray());
        using var back = nf4.Dequantize(ScalarType.Float32);
        Assert.Equal(FourBitCodes.Nf4[12] * 3, back[1, 2].item<float>(), 6);

        // FP4: 1 → 0b0011 (12/12), -1 → 0b1011, 0.5 → 0b0101 (6/12), 0 → 0b0000.
        using var fp4 = FourBitWeight.Quantize(weight, FourBitType.Fp4, doubleQuant: false);
        var fp = fp4.Packed.data<byte>().ToArray();
        Assert.Equal(3 * 16 + 11, fp[0]);
        Assert.Equal(5 * 16 + 0, fp[1]);
    }

    [Theory]
    [InlineData(FourBitType.Nf4, false)]
    [InlineData(FourBitType.Fp4, false)]
    [InlineData(FourBitType.Nf4, true)]
    public void DequantizingStaysWithinHalfTheWidestGapOfEachBlock(FourBitType type, bool doubleQuant)
    {
        // [3, 50]: two blocks of 64 and a last one of 22; [5, 31]: an odd count of values, so the last byte is half empty.
        manual_seed(3);
        foreach (var shape in new long[][] { [3, 50], [5, 31] })
        {
            using var weight = randn(shape) * 0.05;
            using var q = FourBitWeight.Quantize(weight, type, doubleQuant);
            var n = shape[0] * shape[1];
            Assert.Equal((n + 1) / 2, q.Packed.shape[0]);
            using var back = q.Dequantize(ScalarType.Float32);
            Assert.Equal(shape, back.shape);
            var code = FourBitCodes.Of(type).Order().ToArray();
            var halfGap = code.Zip(code.Skip(1), (a, b) => b - a).Max() / 2;
            var flat = weight.reshape(-1);
            var error = (back.reshape(-1) - flat).abs();
            for (long start = 0; start < n; start += 64)
            {
                var length = Math.Min(64, n - start);
                var absmax = flat.narrow(0, start, length).abs().max().item<float>();
                // Double quantization codes the scale itself: allow its 8-bit error (well under 1 %) on top.
                var bound = halfGap * absmax * (doubleQuant ? 1.01f : 1f) + 1e-7f;
                Assert.True(error.narrow(0, start, length).max().item<float>() <= bound, $"{type} block at {start}: error above {bound}");
            }
        }
    }

    [Fact]
    public void DoubleQuantizationCodesTheScalesAroundTheirMean()
    {
        manual_seed(4);
        using var weight = randn(64, 64) * linspace(0.01, 1, 64).unsqueeze(1);   // scales spread over two decades
        using var plain = FourBitWeight.Quantize(weight, FourBitType.Nf4, doubleQuant: false);
        using var nested = FourBitWeight.Quantize(weight, FourBitType.Nf4, doubleQuant: true);
        Assert.True(nested.IsNested);
        Assert.Equal(ScalarType.Byte, nested.Absmax.dtype);
        Assert.Equal(plain.Absmax.mean().item<float>(), nested.Offset, 6);
        Assert.Equal([1L], nested.NestedAbsmax!.shape);                 // 64 scales: one block of 256
        Assert.Equal(256, nested.NestedCode!.shape[0]);
        Assert.True(plain.Packed.eq(nested.Packed).all().item<bool>());                // the 4-bit codes do not depend on it
        // Decoded scale = dynamic-map value × block absmax + offset: within half a map step of the true scale.
        using var a = plain.Dequantize(ScalarType.Float32);
        using var b = nested.Dequantize(ScalarType.Float32);
        var relative = ((a - b).abs().sum() / a.abs().sum()).item<float>();
        Assert.True(relative < 0.01, $"double quantization changed the weights by {relative:P2}");
        Assert.True(relative > 0, "the scales were not quantized");
        // One byte per scale instead of four (the 256-entry map is shared by a whole weight, so small ones gain nothing).
        Assert.Equal(plain.Absmax.NumberOfElements, nested.Absmax.NumberOfElements);
        Assert.Equal(1, nested.Absmax.ElementSize);
    }

    [Fact]
    public void TheFourBitProjectionsGradientIsTheDequantizedWeights()
    {
        manual_seed(5);
        using var w = randn(12, 64) * 0.1;
        using var q = FourBitWeight.Quantize(w, FourBitType.Nf4, doubleQuant: true);
        using var dense = q.Dequantize(ScalarType.Float32);
        var bias = randn(12);
        var x = randn(2, 3, 64).requires_grad_(true);
        var y = FourBitLinear.Forward(x, q, bias);
        Autograd.Backward((y * y).sum());
        var x2 = x.detach().clone().requires_grad_(true);
        var y2 = nn.functional.linear(x2, dense, bias);
        (y2 * y2).sum().backward();
        Assert.True(y.allclose(y2, 1e-5, 1e-6));
        Assert.True(x.grad!.allclose(x2.grad!, 1e-5, 1e-6));
    }

    [Fact]
    public void ABf16ProjectionOnTheCpuIsAnFp32MatmulOfTheRoundedOperandsRoundedOnce()
    {
        manual_seed(7);
        using var q = FourBitWeight.Quantize(randn(16, 64) * 0.1, FourBitType.Nf4, doubleQuant: false);
        using var dense = q.Dequantize(ScalarType.BFloat16).to(ScalarType.Float32);   // bitsandbytes' bf16 weight, widened
        var x = randn(3, 64).to(ScalarType.BFloat16).requires_grad_(true);
        var y = FourBitLinear.Forward(x, q, null);
        Assert.Equal(ScalarType.BFloat16, y.dtype);
        using var expected = nn.functional.linear(x.detach().to(ScalarType.Float32), dense).to(ScalarType.BFloat16);
        Assert.True(y.detach().eq(expected).all().item<bool>());
        var g = randn(3, 16).to(ScalarType.BFloat16);
        Autograd.Backward((y * g).sum());
        using var expectedGrad = (g.to(ScalarType.Float32).matmul(dense)).to(ScalarType.BFloat16);
        Assert.True(x.grad!.allclose(expectedGrad, 1e-2, 1e-3));
    }

    [Fact]
    public void LoraOnAFourBitBaseHasTheGradientsOfLoraOnTheDequantizedWeights()
    {
        using var quantized = LlamaForCausalLM.FromPretrained(Fixtures.Base("llama"), new ModelLoadOptions(Quantize: new FourBitOptions(FourBitType.Nf4, true)));
        using var dense = LlamaForCausalLM.FromPretrained(Fixtures.Base("llama"));
        var pairs = FourBitModel.Projections(quantized).Zip(FourBitModel.Projections(dense)).ToList();
        Assert.NotEmpty(pairs);
        using (no_grad())
            foreach (var (q, d) in pairs)
            {
                Assert.NotNull(q.FourBit);
                Assert.Equal(0, q.weight.NumberOfElements);   // the full-precision weight is gone
                d.weight.copy_(q.FourBit!.Dequantize(ScalarType.Float32));
            }
        var ids = tensor(new long[] { 3, 9, 27, 1, 50, 12, 33, 8 }).unsqueeze(0);
        var results = new List<(float Loss, Dictionary<string, Tensor> Grads)>();
        foreach (var model in new LlamaForCausalLM[] { quantized, dense })
        {
            manual_seed(6);
            model.Adapters.Add("a", new LoraConfig { R = 4, UseRsLora = true, InitLoraWeights = LoraInit.Off, TargetModules = ["q_proj", "v_proj", "gate_proj", "down_proj"] });
            model.train();
            var loss = model.Forward(ids, labels: ids).Loss!;
            Autograd.Backward(loss);
            results.Add((loss.item<float>(), model.TrainableParameters().ToDictionary(p => p.Name, p => p.Parameter.grad!.clone())));
        }
        Assert.Equal(results[1].Loss, results[0].Loss, 5);
        Assert.Equal(results[1].Grads.Keys.Order(), results[0].Grads.Keys.Order());
        foreach (var (name, g) in results[1].Grads)
            Assert.True(g.allclose(results[0].Grads[name], 1e-4, 1e-6), $"{name}: max {(g - results[0].Grads[name]).abs().max().item<float>()}");
        // The base is quantized, not merely rounded: the logits differ from the full-precision fixture's.
        using var original = LlamaForCausalLM.FromPretrained(Fixtures.Base("llama"));
        using (no_grad())
            Assert.False(original.Forward(ids).Logits.allclose(LlamaForCausalLM.FromPretrained(Fixtures.Base("llama"),
                new ModelLoadOptions(Quantize: new FourBitOptions(FourBitType.Nf4))).Forward(ids).Logits, 1e-4, 1e-5));
    }

    [Fact]
    public void WhatDoesNotYetRunOnFourBitsIsRefusedByName()
    {
        using var model = LlamaForCausalLM.FromPretrained(Fixtures.Base("llama"), new ModelLoadOptions(Quantize: new FourBitOptions(FourBitType.Fp4)));
        var e = Assert.Throws<PeftDslException>(() => model.Ia3.Add("x", new Ia3Config()));
        Assert.Contains("IA3 is not supported on a 4-bit base", e.Message);
        e = Assert.Throws<PeftDslException>(() => model.Adapters.Add("d", new LoraConfig { UseDora = true }));
        Assert.Contains("DoRA", e.Message);
        model.Adapters.Add("a", new LoraConfig());
        e = Assert.Throws<PeftDslException>(() => model.Adapters.Merge());
        Assert.Contains("merging adapters is not supported on a 4-bit base", e.Message);
        using var dir = new TempDir();
        e = Assert.Throws<PeftDslException>(() => model.SaveWeights(dir.File("model.safetensors")));
        Assert.Contains("saving the base weights", e.Message);
    }
}
