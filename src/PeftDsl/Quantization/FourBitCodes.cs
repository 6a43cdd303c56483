using TorchSharp;
using static TorchSharp.torch;

namespace PeftDsl.Quantization;

/// <summary>bitsandbytes' 4-bit data types: NormalFloat4 (QLoRA's default) and its 4-bit float.</summary>
public enum FourBitType
{
    /// <summary>NormalFloat4: 16 quantiles of N(0, 1), scaled to [-1, 1] (<c>nf4</c>).</summary>
    Nf4,
    /// <summary>bitsandbytes' FP4: 1 sign, 2 exponent and 1 mantissa bit, scaled to [-1, 1] (<c>fp4</c>).</summary>
    Fp4,
}

/// <summary>The code books of bitsandbytes (<c>functional.get_4bit_type</c>, <c>create_dynamic_map</c>), value for value.</summary>
public static class FourBitCodes
{
    /// <summary>NF4's 16 values, by code (0 → -1, 7 → 0, 15 → 1): bitsandbytes' table.</summary>
    public static readonly float[] Nf4 =
    [
        -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f, -0.28444138169288635f, -0.18477343022823334f,
        -0.09105003625154495f, 0.0f, 0.07958029955625534f, 0.16093020141124725f, 0.24611230194568634f, 0.33791524171829224f,
        0.44070982933044434f, 0.5626170039176941f, 0.7229568362236023f, 1.0f,
    ];

    /// <summary>FP4's 16 values in bit-pattern order (bit 3 the sign, then exponent and mantissa), divided by the
    /// largest (12) as bitsandbytes normalises them.</summary>
    public static readonly float[] Fp4 =
        new float[] { 0, 0.0625f, 8, 12, 4, 6, 2, 3, -0f, -0.0625f, -8, -12, -4, -6, -2, -3 }.Select(v => v / 12f).ToArray();

    /// <summary>The code book of <paramref name="type"/>.</summary>
    public static float[] Of(FourBitType type) => type == FourBitType.Nf4 ? Nf4 : Fp4;

    /// <summary>The name bitsandbytes and transformers use (<c>bnb_4bit_quant_type</c>).</summary>
    public static string Name(FourBitType type) => type == FourBitType.Nf4 ? "nf4" : "fp4";

    /// <summary>
    /// bitsandbytes' signed 8-bit dynamic map (<c>create_dynamic_map()</c>: 7 exponent bits), which double
    /// quantization codes the blocks' absmax with: for each decade 10^(i-6), i &lt; 7, the midpoints of 2^i + 1 points
    /// evenly spaced on [0.1, 1], with both signs, all in fp32 as torch computes them; then 0 and 1; sorted.
    /// </summary>
    public static float[] Dynamic8Bit()
    {
        var data = new List<double>();
        for (var i = 0; i < 7; i++)
        {
            using var boundaries = linspace(0.1, 1, (1 << i) + 1, dtype: ScalarType.Float32);
            using var means = (boundaries.narrow(0, 0, 1 << i) + boundaries.narrow(0, 1, 1 << i)) / 2.0;
            // A float32 tensor times a Python number stays float32, as in bitsandbytes.
            using var scaled = means * Math.Pow(10, i - 6);
            using var negated = -scaled;
            data.AddRange(scaled.data<float>().Select(v => (double)v));
            data.AddRange(negated.data<float>().Select(v => (double)v));
        }
        data.Add(0);
        data.Add(1.0);
        return data.Select(v => (float)v).Order().ToArray();
    }
}
