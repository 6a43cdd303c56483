using PeftDsl.Errors;
using PeftDsl.Modules;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace PeftDsl.Peft.Lora;

/// <summary>
/// LoRA at one projection: the adapters' A [r, in] and B [out, r] matrices (and DoRA's magnitude [out]), registered
/// on the projection as <c>lora_A.{adapter}.weight</c>, <c>lora_B.{adapter}.weight</c> and
/// <c>lora_magnitude_vector.{adapter}.weight</c> — peft's names — and the math: the delta
/// <c>scaling · B(A(dropout(x)))</c>, DoRA, merge and unmerge, and the mixed-batch path.
/// </summary>
public sealed class LoraLayer
{
    private const string AName = "lora_A";
    private const string BName = "lora_B";
    private const string MagnitudeName = "lora_magnitude_vector";

    private readonly PeftLinear owner;
    private readonly Dictionary<string, LoraSettings> settings = new(StringComparer.Ordinal);
    private readonly List<string> merged = [];
    // DoRA unmerge needs the weight norm of the original weight, which the merged weight no longer gives.
    private readonly Dictionary<string, Tensor> mergedNorms = new(StringComparer.Ordinal);
    private AdapterDict? loraA;
    private AdapterDict? loraB;
    private AdapterDict? magnitude;

    internal LoraLayer(PeftLinear owner) => this.owner = owner;

    /// <summary>True when no LoRA adapter is attached to this projection.</summary>
    public bool IsEmpty => settings.Count == 0;

    /// <summary>Adapters attached here, in the order they were added.</summary>
    public IReadOnlyList<string> Adapters => loraA?.Names.ToList() ?? [];

    /// <summary>Adapters whose delta is currently folded into the weight.</summary>
    public IReadOnlyList<string> Merged => merged;

    /// <summary>True when the adapter is attached to this projection.</summary>
    public bool Has(string adapter) => settings.ContainsKey(adapter);

    /// <summary>The adapter's rank, scaling, dropout and DoRA flag at this projection (after <c>rank_pattern</c>/<c>alpha_pattern</c>).</summary>
    public LoraSettings Settings(string adapter) => settings[adapter];

    /// <summary>(r, in)</summary>
    public Tensor A(string adapter) => loraA![adapter].weight;

    /// <summary>(out, r)</summary>
    public Tensor B(string adapter) => loraB![adapter].weight;

    /// <summary>DoRA's (out) magnitude, or null for plain LoRA.</summary>
    public Tensor? Magnitude(string adapter) => magnitude is { } m && m.Contains(adapter) ? m[adapter].weight : null;

    /// <summary>Attaches an adapter with initial A and B (copied). DoRA's magnitude starts as the row norms of
    /// W + scaling·BA, as peft initialises it.</summary>
    internal void Add(string adapter, LoraSettings s, Tensor a, Tensor b)
    {
        if (settings.ContainsKey(adapter)) throw new PeftDslException($"adapter '{adapter}' already exists on this projection");
        loraA ??= Register(AName);
        loraB ??= Register(BName);
        loraA.Add(adapter, Placed(new AdapterWeight(a.detach().clone())));
        loraB.Add(adapter, Placed(new AdapterWeight(b.detach().clone())));
        if (s.UseDora)
        {
            magnitude ??= Register(MagnitudeName);
            using var noGrad = no_grad();
            using var scope = NewDisposeScope();
            var norm = WeightNorm(a, b, s.Scaling);
            magnitude.Add(adapter, Placed(new AdapterWeight(norm)));
        }
        // Last: the adapter counts as attached only once every tensor exists (a failure above is rolled back by
        // the registry, which removes what it finds).
        settings[adapter] = s;
    }

    /// <summary>Removes an adapter (it must not be merged).</summary>
    internal void Remove(string adapter)
    {
        if (merged.Contains(adapter)) throw new PeftDslException($"adapter '{adapter}' is merged: unmerge it before removing it");
        settings.Remove(adapter);
        loraA?.Remove(adapter);
        loraB?.Remove(adapter);
        magnitude?.Remove(adapter);
        if (loraA is null || loraB is null) return;
        if (loraA.Count == 0) Unregister(ref loraA, AName);
        if (loraB.Count == 0) Unregister(ref loraB, BName);
        if (magnitude is { Count: 0 }) Unregister(ref magnitude, MagnitudeName);
    }

    /// <summary>The base projection plus every routed adapter's contribution.</summary>
    public Tensor Forward(Tensor x, AdapterRouting routing)
    {
        var result = owner.BaseForward(x);
        if (routing.IsMixed) return MixedBatchLora.Add(this, x, result, routing, owner.training);
        foreach (var adapter in routing.Active)
        {
            // A merged adapter is already in the weight: the merged path costs nothing extra.
            if (!settings.TryGetValue(adapter, out var s) || merged.Contains(adapter)) continue;
            result = s.UseDora ? AddDora(adapter, s, x, result) : AddDelta(adapter, s, x, result);
        }
        return result;
    }

    /// <summary>scaling · B·A, as [out, in] in the weight's layout (the checkpoint's Conv1D transpose is handled on
    /// save, not here).</summary>
    public Tensor DeltaWeight(string adapter) => B(adapter).matmul(A(adapter)).mul(settings[adapter].Scaling);

    /// <summary>True when the shared-input path may compute this adapter here: plain LoRA, unmerged, no mask.</summary>
    internal bool CanFuse(string adapter, bool training) =>
        settings.TryGetValue(adapter, out var s) && !s.UseDora && !s.DropsOut(training) && !merged.Contains(adapter);

    /// <summary>Folds the adapter into the weight. The new weight is computed in fp32 and rounded once into the
    /// weight's dtype, as peft does.</summary>
    internal void Merge(string adapter)
    {
        if (!settings.TryGetValue(adapter, out var s) || merged.Contains(adapter)) return;
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var weight = owner.weight;
        var original = weight.to(ScalarType.Float32);
        var delta = DeltaWeight(adapter).to(ScalarType.Float32);
        if (s.UseDora)
        {
            var norm = WeightNorm(A(adapter), B(adapter), s.Scaling).to(ScalarType.Float32);
            mergedNorms[adapter] = norm.DetachFromDisposeScope();
            weight.copy_(DoraFactor(adapter, norm) * (original + delta));
        }
        else
        {
            weight.copy_(original + delta);
        }
        merged.Add(adapter);
    }

    /// <summary>Takes every merged adapter out of the weight, newest first; exact up to fp rounding.</summary>
    internal void Unmerge()
    {
        using var noGrad = no_grad();
        for (var i = merged.Count - 1; i >= 0; i--)
        {
            using var scope = NewDisposeScope();
            var adapter = merged[i];
            var weight = owner.weight;
            var current = weight.to(ScalarType.Float32);
            var delta = DeltaWeight(adapter).to(ScalarType.Float32);
            if (mergedNorms.Remove(adapter, out var norm))
            {
                // DoRA's factor must use the original weight's norm; the model may have moved since the merge.
                weight.copy_(current / DoraFactor(adapter, norm.to(weight.device)) - delta);
                norm.Dispose();
            }
            else
            {
                weight.copy_(current - delta);
            }
        }
        merged.Clear();
    }

    /// <summary>DoRA's per-row factor m / ‖W + sBA‖ as an (out, 1) fp32 column.</summary>
    private Tensor DoraFactor(string adapter, Tensor norm) => (Magnitude(adapter)!.to(ScalarType.Float32) / norm).view(-1, 1);

    /// <summary>Keeps the merged weights but drops the record of what was merged (merge-and-unload).</summary>
    internal void ForgetMerged()
    {
        merged.Clear();
        foreach (var norm in mergedNorms.Values) norm.Dispose();
        mergedNorms.Clear();
    }

    /// <summary>The input in the adapter's dtype: adapters stay fp32 on a bf16/fp16 base, as peft keeps them.</summary>
    internal static Tensor Cast(Tensor x, Tensor like) => x.dtype == like.dtype ? x : x.to(like.dtype);

    internal static Tensor CastBack(Tensor delta, Tensor result) => delta.dtype == result.dtype ? delta : delta.to(result.dtype);

    private Tensor AddDelta(string adapter, LoraSettings s, Tensor x, Tensor result)
    {
        var dropsOut = s.DropsOut(owner.training);
        var a = A(adapter);
        var input = Cast(x, a);
        if (dropsOut && s.DropoutPosition == DropoutPosition.Pre) input = F.dropout(input, s.Dropout, true);
        var h = F.linear(F.linear(input, a), B(adapter));
        if (dropsOut && s.DropoutPosition == DropoutPosition.Post) h = F.dropout(h, s.Dropout, true);
        // Same dtype: one fused add. An fp32 adapter on a bf16 base adds in fp32 and rounds once, as peft does.
        return result.dtype == h.dtype ? result.add(h, s.Scaling) : (result + h * s.Scaling).to(result.dtype);
    }

    /// <summary>
    /// DoRA (peft's DoraLinearLayer): result + (m/‖W + sBA‖ − 1)·(W x) + m/‖W + sBA‖ · s·B(A(x)). The norm is
    /// detached, as the paper (§4.3) and peft do; with dropout active the base term is recomputed on the dropped input.
    /// </summary>
    private Tensor AddDora(string adapter, LoraSettings s, Tensor x, Tensor result)
    {
        var dropsOut = s.DropsOut(owner.training);
        var a = A(adapter);
        var input = Cast(x, a);
        if (dropsOut) input = F.dropout(input, s.Dropout, true);
        Tensor norm;
        using (no_grad()) norm = WeightNorm(a, B(adapter), s.Scaling);
        var scale = (Magnitude(adapter)! / norm).view(1, -1);
        var lora = F.linear(F.linear(input, a), B(adapter));
        var baseResult = dropsOut
            ? F.linear(input, Cast(owner.weight, a))
            : Cast(owner.bias is null ? result : result - owner.bias, a);
        var dora = (scale - 1) * baseResult + scale * lora * s.Scaling;
        return result + CastBack(dora, result);
    }

    /// <summary>(out) row norms of W + scaling·BA, in the adapter's dtype.</summary>
    private Tensor WeightNorm(Tensor a, Tensor b, double scaling) => (Cast(owner.weight, a) + b.matmul(a).mul(scaling)).norm(1);

    private AdapterDict Register(string name)
    {
        var dict = Placed(new AdapterDict());
        owner.RegisterPeftModule(name, dict);
        return dict;
    }

    /// <summary>Marks a new module as living where the projection lives. TorchSharp skips a later <c>to(device)</c>
    /// on a module that believes it is already there, and a module built on the CPU believes it is on the CPU.</summary>
    private T Placed<T>(T module) where T : nn.Module
    {
        var device = owner.weight.device;
        if (device.type != DeviceType.CPU) module.to(device);
        return module;
    }

    private void Unregister(ref AdapterDict? dict, string name)
    {
        owner.UnregisterPeftModule(name);
        dict!.Dispose();
        dict = null;
    }
}
