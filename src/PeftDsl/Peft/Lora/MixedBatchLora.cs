using PeftDsl.Errors;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftDsl.Peft.Lora;

/// <summary>
/// A batch whose rows use different adapters (peft's <c>adapter_names</c>), with no loop over adapters or sub-batches.
/// <list type="bullet">
/// <item>Inference: each row gathers its adapter's A and B from a stack (zeros for <c>__base__</c> and for adapters
/// absent at this site, ranks zero-padded to the largest, scaling folded into B), and two batched matmuls apply
/// them. Cost grows with the largest rank, not with the number of adapters.</item>
/// <item>Training: the gathered per-row copies of A and B would be kept for the backward pass (gigabytes on a large
/// model), so instead every present adapter's A is applied at once (one [Σr, in] matmul), each row keeps only its
/// own adapter's block of the result (a 0/1 mask), and one [out, Σr] matmul applies the B's. Exact, and gradients
/// reach each adapter only through its own rows.</item>
/// </list>
/// </summary>
internal static class MixedBatchLora
{
    /// <param name="x">(B, …, in)</param>
    /// <param name="result">(B, …, out) the base projection of <paramref name="x"/>.</param>
    public static Tensor Add(LoraLayer layer, Tensor x, Tensor result, AdapterRouting routing, bool training)
    {
        var distinct = routing.Distinct!;
        var present = distinct.Where(layer.Has).ToList();
        if (present.Count == 0) return result;
        if (layer.Merged.Count > 0)
            throw new PeftDslException("a mixed-adapter batch cannot run while adapters are merged: unmerge them first");
        if (present.FirstOrDefault(a => layer.Settings(a).UseDora) is { } dora)
            throw new PeftDslException($"adapter '{dora}' uses DoRA, which a mixed-adapter batch does not support (peft refuses it too)");

        var first = layer.A(present[0]);
        long inFeatures = first.shape[1], outFeatures = layer.B(present[0]).shape[0];
        var slots = routing.RowSlots!;
        var batch = x.shape[0];
        var input = LoraLayer.Cast(x, first).reshape(batch, -1, inFeatures);     // (B, T, in)
        if (training) input = DropRows(input, Rates(layer, distinct, DropoutPosition.Pre), slots);
        var trains = is_grad_enabled() && present.Any(a => layer.A(a).requires_grad || layer.B(a).requires_grad);
        var delta = trains
            ? MaskedBlocks(layer, input, distinct, present, slots)
            : Gathered(layer, input, distinct, present, slots);                  // (B, T, out)
        if (training) delta = DropRows(delta, Rates(layer, distinct, DropoutPosition.Post), slots);
        var flat = result.reshape(batch, -1, outFeatures);                        // (B, T, out)
        // Not baddbmm: TorchSharp 0.107 passes its operands to the native call in the wrong order.
        return (flat + LoraLayer.CastBack(delta, flat)).view(result.shape);
    }

    private static Tensor Gathered(LoraLayer layer, Tensor input, IReadOnlyList<string> distinct, List<string> present, Tensor slots)
    {
        var first = layer.A(present[0]);
        var rank = present.Max(a => layer.Settings(a).Rank);
        long inFeatures = first.shape[1], outFeatures = layer.B(present[0]).shape[0];
        var zeroA = zeros(rank, inFeatures, dtype: first.dtype, device: first.device);
        var zeroB = zeros(outFeatures, rank, dtype: first.dtype, device: first.device);
        var stackA = new List<Tensor>();
        var stackB = new List<Tensor>();
        foreach (var adapter in distinct)
        {
            if (!layer.Has(adapter))
            {
                stackA.Add(zeroA);
                stackB.Add(zeroB);
                continue;
            }
            var s = layer.Settings(adapter);
            var pad = rank - s.Rank;
            var a = layer.A(adapter);
            var b = layer.B(adapter).mul(s.Scaling);
            stackA.Add(pad == 0 ? a : nn.functional.pad(a, [0, 0, 0, pad]));
            stackB.Add(pad == 0 ? b : nn.functional.pad(b, [0, pad]));
        }
        stackA.Add(zeroA);
        stackB.Add(zeroB);
        var rowsA = stack(stackA).index_select(0, slots);    // (B, r, in)
        var rowsB = stack(stackB).index_select(0, slots);    // (B, out, r)
        return input.bmm(rowsA.transpose(1, 2)).bmm(rowsB.transpose(1, 2));
    }

    private static Tensor MaskedBlocks(LoraLayer layer, Tensor input, IReadOnlyList<string> distinct, List<string> present, Tensor slots)
    {
        var a = cat(present.Select(layer.A).ToList(), 0);                                                   // (Σr, in)
        var b = cat(present.Select(p => layer.B(p).mul(layer.Settings(p).Scaling)).ToList(), 1);             // (out, Σr)
        // The slot each column of h belongs to; a row keeps the columns of its own slot.
        var columnSlots = present.SelectMany(p => Enumerable.Repeat((long)distinct.ToList().IndexOf(p), layer.Settings(p).Rank)).ToArray();
        var keep = slots.view(-1, 1) == tensor(columnSlots, device: slots.device).view(1, -1);              // (B, Σr)
        var h = nn.functional.linear(input, a) * keep.unsqueeze(1).to(a.dtype);                              // (B, T, Σr)
        return nn.functional.linear(h, b);
    }

    /// <summary>Each slot's dropout rate at <paramref name="position"/> (the last slot is the base model: 0).</summary>
    private static double[] Rates(LoraLayer layer, IReadOnlyList<string> distinct, DropoutPosition position) =>
        distinct.Select(a => layer.Has(a) && layer.Settings(a).DropoutPosition == position ? layer.Settings(a).Dropout : 0.0)
            .Append(0.0).ToArray();

    /// <summary>Inverted dropout with each row's own rate.</summary>
    private static Tensor DropRows(Tensor t, double[] rates, Tensor slots)
    {
        if (rates.All(r => r == 0)) return t;
        var perRow = tensor(rates, dtype: t.dtype, device: t.device).index_select(0, slots).view(-1, 1, 1);   // (B, 1, 1)
        var keep = rand_like(t) >= perRow;
        return t * keep / (1 - perRow);
    }
}
