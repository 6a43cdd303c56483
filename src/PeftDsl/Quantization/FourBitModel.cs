using PeftDsl.Modules;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftDsl.Quantization;

/// <summary>What to quantize a base model to (<c>--quantize</c>, <c>--double-quant</c>; transformers'
/// <c>BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type, bnb_4bit_use_double_quant)</c>).</summary>
public sealed record FourBitOptions(FourBitType Type, bool DoubleQuant = false);

/// <summary>
/// A base model with 4-bit projections, as transformers' bitsandbytes integration makes it: every
/// <see cref="PeftLinear"/> (the attention and MLP projections) holds its weight in 4 bits; embeddings, norms and the
/// LM head stay in the compute dtype. The full-precision model never exists at once: the projections' weights are
/// emptied before the rest is converted, then each is filled (from the checkpoint, or at random), quantized and freed
/// in turn.
/// </summary>
public static class FourBitModel
{
    /// <summary>The projections of <paramref name="model"/> that take 4-bit weights.</summary>
    public static IReadOnlyList<PeftLinear> Projections(nn.Module model) => model.modules().OfType<PeftLinear>().ToList();

    /// <summary>Quantizes every projection of a model whose weights are already in memory.</summary>
    public static void Quantize(nn.Module model, FourBitOptions options)
    {
        foreach (var linear in Projections(model)) linear.QuantizeTo4Bit(options.Type, options.DoubleQuant);
    }

    /// <summary>Empties the projections' weights (not yet written, so they hold no memory) and returns their shapes,
    /// so that converting the rest of the model to the compute dtype does not materialise them.</summary>
    public static IReadOnlyList<(PeftLinear Linear, long[] Shape)> EmptyProjections(nn.Module model)
    {
        using var noGrad = no_grad();
        var shapes = Projections(model).Select(l => (l, l.weight.shape)).ToList();
        using var scope = NewDisposeScope();
        foreach (var (linear, _) in shapes) linear.weight.set_(empty(0, dtype: linear.weight.dtype, device: linear.weight.device));
        return shapes;
    }

    /// <summary>Gives each emptied projection an uninitialised weight of its shape in <paramref name="dtype"/> on
    /// <paramref name="device"/> again: allocated, not yet written, so not yet resident.</summary>
    public static void Reallocate(IReadOnlyList<(PeftLinear Linear, long[] Shape)> shapes, ScalarType dtype, Device device)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        foreach (var (linear, shape) in shapes) linear.weight.set_(empty(shape, dtype: dtype, device: device));
    }

    /// <summary>A random model's projections (<c>peft bench --shape … --quantize</c>): each gets a normal(0, 0.02) weight in
    /// <paramref name="dtype"/>, is quantized and freed before the next, so one full-precision weight exists at a time.</summary>
    public static void FillAtRandom(IReadOnlyList<(PeftLinear Linear, long[] Shape)> shapes, FourBitOptions options, ScalarType dtype, Device device)
    {
        foreach (var (linear, shape) in shapes)
        {
            // In-place ops return new handles on the weight: the scope frees them at once, or the GC would keep each
            // full-precision weight alive until it ran.
            using var scope = NewDisposeScope();
            using (no_grad())
            {
                linear.weight.set_(empty(shape, dtype: dtype, device: device));
                nn.init.normal_(linear.weight, 0, WeightInitializer.Std);
            }
            linear.QuantizeTo4Bit(options.Type, options.DoubleQuant);
            Runtime.NativeHeap.Trim();   // else glibc keeps every freed weight resident until the end (NativeHeap)
        }
    }

    /// <summary>Bytes a model needs for its weights: <paramref name="dtype"/> for every parameter, or, with
    /// <paramref name="quantize"/>, 4 bits and a 4-byte scale per 64 values (1 byte and a 256th share with double
    /// quantization) for the projections. Counted from shapes, before anything is written.</summary>
    public static double EstimateBytes(nn.Module model, ScalarType dtype, FourBitOptions? quantize)
    {
        var projections = quantize is null ? [] : Projections(model).Select(l => l.weight.Handle).ToHashSet();
        var perValue = DTypeBytes(dtype);
        var fourBit = 0.5 + (quantize?.DoubleQuant == true ? (1 + 4.0 / 256) / 64 : 4.0 / 64);
        return model.parameters().Sum(p => (double)p.NumberOfElements * (projections.Contains(p.Handle) ? fourBit : perValue));
    }

    /// <summary>Bytes per value of a floating dtype.</summary>
    public static int DTypeBytes(ScalarType dtype) => dtype is ScalarType.Float32 ? 4 : dtype is ScalarType.Float64 ? 8 : 2;

    /// <summary>Bytes the 4-bit weights hold, packed codes and quantization state.</summary>
    public static long Bytes(nn.Module model) => Projections(model).Sum(l => l.FourBit?.Bytes ?? 0);
}
