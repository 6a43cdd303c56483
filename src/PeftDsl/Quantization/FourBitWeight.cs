using PeftDsl.Errors;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftDsl.Quantization;

/// <summary>
/// A weight in bitsandbytes' 4-bit format (<c>Params4bit</c> and its <c>QuantState</c>), as its reference kernels
/// (<c>backends/default/ops.py</c>) compute it: the flattened weight in blocks of <see cref="BlockSize"/> values, each
/// scaled by its largest magnitude (absmax) into [-1, 1] and replaced by the nearest of the 16 code values (ties to the
/// lower); two codes per byte, the first in the high nibble. With double quantization the fp32 absmax values, less their
/// mean (the offset), are coded again in 8 bits with the dynamic map, in blocks of 256 with their own fp32 absmax.
/// </summary>
public sealed class FourBitWeight : IDisposable
{
    /// <summary>bitsandbytes' default block size for 4-bit weights (transformers' <c>bnb_4bit_blocksize</c>).</summary>
    public const int DefaultBlockSize = 64;

    /// <summary>The block size of double quantization (bitsandbytes fixes it).</summary>
    public const int NestedBlockSize = 256;

    private FourBitWeight(FourBitType type, long[] shape, ScalarType dtype, int blockSize, Tensor packed, Tensor absmax, Tensor code,
        Tensor? nestedAbsmax, Tensor? nestedCode, float offset)
    {
        (Type, Shape, DType, BlockSize, Packed, Absmax, Code) = (type, shape, dtype, blockSize, packed, absmax, code);
        (NestedAbsmax, NestedCode, Offset) = (nestedAbsmax, nestedCode, offset);
    }

    /// <summary>NF4 or FP4.</summary>
    public FourBitType Type { get; }

    /// <summary>The weight's shape ([out, in] for a linear layer).</summary>
    public long[] Shape { get; }

    /// <summary>Values in the weight (the product of <see cref="Shape"/>).</summary>
    public long Elements => Shape.Aggregate(1L, (a, b) => a * b);

    /// <summary>The dtype the weight had before quantization (bitsandbytes' <c>quant_state.dtype</c>).</summary>
    public ScalarType DType { get; }

    /// <summary>Values per absmax block.</summary>
    public int BlockSize { get; }

    /// <summary>(⌈n / 2⌉, 1) uint8: two codes per byte (<c>weight</c> in a bitsandbytes checkpoint).</summary>
    public Tensor Packed { get; }

    /// <summary>fp32 (blocks), or uint8 (blocks) codes of the dynamic map with double quantization (<c>weight.absmax</c>).</summary>
    public Tensor Absmax { get; }

    /// <summary>The 16 fp32 code values (<c>weight.quant_map</c>).</summary>
    public Tensor Code { get; }

    /// <summary>Double quantization: fp32 absmax of each block of 256 absmax codes (<c>weight.nested_absmax</c>); else null.</summary>
    public Tensor? NestedAbsmax { get; }

    /// <summary>Double quantization: the 256-value dynamic map (<c>weight.nested_quant_map</c>); else null.</summary>
    public Tensor? NestedCode { get; }

    /// <summary>Double quantization: the mean subtracted from the absmax values before coding them; 0 otherwise.</summary>
    public float Offset { get; }

    /// <summary>True when the absmax values are themselves quantized.</summary>
    public bool IsNested => NestedAbsmax is not null;

    /// <summary>Bytes held: the packed codes and the quantization state.</summary>
    public long Bytes => new[] { Packed, Absmax, Code, NestedAbsmax, NestedCode }.Sum(t => t is null ? 0 : t.NumberOfElements * t.ElementSize);

    /// <summary>Quantizes <paramref name="weight"/> (fp32, bf16 or fp16) as <c>bitsandbytes.functional.quantize_4bit</c>.</summary>
    /// <param name="doubleQuant">Also quantize the absmax values (<c>bnb_4bit_use_double_quant</c>, <c>compress_statistics</c>).</param>
    public static FourBitWeight Quantize(Tensor weight, FourBitType type, bool doubleQuant, int blockSize = DefaultBlockSize)
    {
        if (weight.dtype is not (ScalarType.Float32 or ScalarType.BFloat16 or ScalarType.Float16))
            throw new PeftDslException($"4-bit quantization takes fp32, bf16 or fp16 weights, not {weight.dtype}");
        if (blockSize is not (32 or 64 or 128 or 256 or 512 or 1024 or 2048 or 4096))
            throw new PeftDslException($"4-bit quantization: block size {blockSize} is not one of bitsandbytes' (32, 64, …, 4096)");
        using var scope = NewDisposeScope();
        var device = weight.device;
        var code = tensor(FourBitCodes.Of(type), device: device);
        var (indices, absmax) = Blockwise(weight.reshape(-1).to(ScalarType.Float32), code, blockSize);
        if (indices.shape[0] % 2 == 1) indices = cat([indices, zeros(1, dtype: indices.dtype, device: device)]);
        var pairs = indices.view(-1, 2);
        var packed = (pairs.select(1, 0) * 16 + pairs.select(1, 1)).to(ScalarType.Byte).unsqueeze(1);
        Tensor? nestedAbsmax = null, nestedCode = null;
        var offset = 0f;
        if (doubleQuant)
        {
            var mean = absmax.mean();
            offset = mean.item<float>();
            nestedCode = tensor(FourBitCodes.Dynamic8Bit(), device: device);
            (absmax, nestedAbsmax) = Blockwise(absmax - mean, nestedCode, NestedBlockSize);
            absmax = absmax.to(ScalarType.Byte);
        }
        var result = new FourBitWeight(type, weight.shape, weight.dtype, blockSize, packed, absmax, code, nestedAbsmax, nestedCode, offset);
        foreach (var t in new[] { packed, absmax, code, nestedAbsmax, nestedCode }) t?.DetachFromDisposeScope();
        return result;
    }

    private Tensor? pairs;

    /// <summary>(256, 2) fp32: the two code values of every byte, high nibble first, made once per weight.</summary>
    private Tensor Pairs()
    {
        if (pairs is not null) return pairs;
        using var scope = NewDisposeScope();
        var bytes = arange(256, dtype: ScalarType.Int64, device: Code.device);
        pairs = stack([Code.index_select(0, bytes.div(16, rounding_mode: RoundingMode.floor)), Code.index_select(0, bytes.remainder(16))], 1)
            .DetachFromDisposeScope();
        return pairs;
    }

    /// <summary>The weight in <paramref name="dtype"/>, as <c>dequantize_4bit</c> gives it (code × absmax in fp32, then
    /// cast). Four kernels: bytes to indices, one look-up of both nibbles' values, the in-place scaling, the cast (four
    /// more decode double-quantized scales). The temporaries are int32 indices and fp32 values: 2.5 times the fp32
    /// weight's bytes at most, and only one weight's at a time.</summary>
    public Tensor Dequantize(ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        var n = Elements;
        var values = Pairs().index_select(0, Packed.reshape(-1).to(ScalarType.Int32)).view(-1);
        if (values.shape[0] != n) values = values.narrow(0, 0, n).contiguous();
        ScaleBlocks(values, AbsmaxValues(), BlockSize);
        return values.view(Shape).to(dtype).MoveToOuterDisposeScope();
    }

    /// <summary>The fp32 absmax of every block: stored, or decoded from double quantization.</summary>
    private Tensor AbsmaxValues()
    {
        if (!IsNested) return Absmax;
        var values = NestedCode!.index_select(0, Absmax.to(ScalarType.Int32));
        ScaleBlocks(values, NestedAbsmax!, NestedBlockSize);
        return values.add_(Offset);
    }

    /// <summary>Multiplies each block of <paramref name="blockSize"/> flat values (the last may be shorter) by its scale, in place.</summary>
    private static void ScaleBlocks(Tensor values, Tensor scales, int blockSize)
    {
        var n = values.shape[0];
        var full = n / blockSize * blockSize;
        values.narrow(0, 0, full).view(-1, blockSize).mul_(scales.narrow(0, 0, full / blockSize).unsqueeze(1));
        if (full < n) values.narrow(0, full, n - full).mul_(scales[full / blockSize]);
    }

    /// <summary>bitsandbytes' blockwise quantization of a flat fp32 tensor against a code book: absmax per block (the
    /// last block may be shorter), values times the inverse absmax clamped to [-1, 1], each coded by the index of the
    /// nearest code value (midpoints to the lower). Returns (int64 codes, fp32 absmax).</summary>
    private static (Tensor Codes, Tensor Absmax) Blockwise(Tensor flat, Tensor code, int blockSize)
    {
        var n = flat.shape[0];
        var full = n / blockSize * blockSize;
        var blocks = flat.narrow(0, 0, full).view(-1, blockSize);
        var absmax = blocks.abs().max(1).values;
        var scaled = (blocks * absmax.clamp_min(1e-38).reciprocal().unsqueeze(1)).clamp(-1, 1).reshape(-1);
        if (full < n)
        {
            var rest = flat.narrow(0, full, n - full);
            var last = rest.abs().max().clamp_min(1e-38);
            absmax = cat([absmax, last.unsqueeze(0)]);
            scaled = cat([scaled, (rest / last).clamp(-1, 1)]);
        }
        // The code book sorted, with each sorted position mapped back to its code (FP4's codes are not in value order).
        var (sorted, order) = code.sort(stable: true);
        var bounds = (sorted.narrow(0, 0, sorted.shape[0] - 1) + sorted.narrow(0, 1, sorted.shape[0] - 1)) / 2;
        var codes = order.index_select(0, bucketize(scaled, bounds));
        return (codes, absmax);
    }

    /// <summary>Frees the packed codes and the quantization state.</summary>
    public void Dispose()
    {
        foreach (var t in new[] { Packed, Absmax, Code, NestedAbsmax, NestedCode, pairs }) t?.Dispose();
    }
}
