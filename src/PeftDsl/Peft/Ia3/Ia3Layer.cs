using PeftDsl.Errors;
using PeftDsl.Modules;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftDsl.Peft.Ia3;

/// <summary>peft's <c>ia3_l</c> ParameterDict: one vector per adapter, named after it
/// (<c>…c_attn.ia3_l.{adapter}</c>), [out, 1] when it scales the output, [1, in] when it scales the input.</summary>
public sealed class Ia3Vectors : nn.Module, IPeftTensors
{
    /// <summary>An empty dict; the projection's <c>Ia3Layer</c> creates it with its first adapter.</summary>
    public Ia3Vectors() : base(nameof(Ia3Vectors))
    {
    }

    /// <summary>The adapter's vector: [out, 1], [1, in], or [columns, 1] for a NeMo slice.</summary>
    public Parameter this[string adapter] => (Parameter)_internal_params[adapter];

    /// <summary>True when the adapter has a vector here.</summary>
    public bool Contains(string adapter) => _internal_params.ContainsKey(adapter);

    /// <summary>Adapter names, in the order they were added.</summary>
    public IEnumerable<string> Names => _internal_params.Keys;

    /// <summary>Registers <paramref name="value"/> as the adapter's parameter (not copied: it leaves the caller's dispose scope).</summary>
    public void Add(string adapter, Tensor value) => register_parameter(adapter, OwnedParameter.Of(value));

    /// <summary>Removes and disposes the adapter's vector; a name not here is ignored.</summary>
    public void Remove(string adapter)
    {
        if (!_internal_params.ContainsKey(adapter)) return;
        var p = _internal_params[adapter];
        _internal_params.Remove(adapter);
        p.Dispose();
    }

    /// <summary>Empty on purpose: children are registered explicitly (<c>register_module</c>), not by TorchSharp's field reflection.</summary>
    protected override void RegisterComponents()
    {
    }
}

/// <summary>
/// The IA3 adapters of one projection and their math. The scaling is fused into the projection's one op: an output
/// vector scales the weight's rows (and the bias), an input vector its columns, so no scaled copy of the activations
/// is made or kept for backward. A mixed batch scales each row's activations with its own vector. Merging folds the
/// vectors into the weights and keeps the original weights, so unmerging restores them exactly.
/// </summary>
public sealed class Ia3Layer(PeftLinear linear)
{
    private Ia3Vectors? vectors;
    private readonly Dictionary<string, bool> feedforward = new(StringComparer.Ordinal);
    private readonly Dictionary<string, (long Start, long Length)> slices = new(StringComparer.Ordinal);
    private readonly List<string> merged = [];
    private (Tensor Weight, Tensor? Bias)? original;

    /// <summary>True when no IA3 adapter is attached to this projection.</summary>
    public bool IsEmpty => vectors is null || !vectors.Names.Any();

    /// <summary>Names of the IA3 adapters attached to this projection.</summary>
    public IEnumerable<string> Adapters => vectors?.Names ?? [];

    /// <summary>True when the adapter has a vector on this projection.</summary>
    public bool Has(string adapter) => vectors?.Contains(adapter) ?? false;

    /// <summary>The vector of an adapter ([out, 1] or [1, in]; [columns, 1] for a slice of the output).</summary>
    public Parameter Vector(string adapter) => vectors?[adapter] ?? throw new PeftDslException($"{linear.GetName()}: no IA3 adapter '{adapter}'");

    /// <summary>True when the adapter scales this projection's input (a peft feed-forward module, or NeMo's MLP
    /// activation); false when it scales the output.</summary>
    public bool IsFeedforward(string adapter) => feedforward[adapter];

    /// <summary>The output columns an adapter scales, or null for all of them (NeMo's placement scales only the
    /// key and value columns of a fused projection).</summary>
    public (long Start, long Length)? Slice(string adapter) => slices.TryGetValue(adapter, out var s) ? s : null;

    /// <summary>The adapter's vector over every feature it could scale (ones outside its slice), flattened.</summary>
    public Tensor Full(string adapter)
    {
        var v = Vector(adapter).flatten();
        if (Slice(adapter) is not { } s) return v;
        var rest = linear.OutFeatures - s.Start - s.Length;
        return cat([ones(s.Start, dtype: v.dtype, device: v.device), v, ones(rest, dtype: v.dtype, device: v.device)]);
    }

    internal void Add(string adapter, bool scalesInput, Tensor value, (long Start, long Length)? slice = null)
    {
        if (slice is { } s) slices[adapter] = s;
        if (vectors is null)
        {
            vectors = new Ia3Vectors();
            linear.RegisterPeftModule("ia3_l", vectors);
        }
        vectors.Add(adapter, value.to(linear.weight.device));
        feedforward[adapter] = scalesInput;
    }

    internal void Remove(string adapter)
    {
        if (merged.Contains(adapter)) throw new PeftDslException($"IA3 adapter '{adapter}' is merged: unmerge it first");
        vectors?.Remove(adapter);
        feedforward.Remove(adapter);
        slices.Remove(adapter);
    }

    /// <summary>The vector(s) acting on this call, multiplied as peft multiplies several active adapters: (n) for
    /// every row, (B, 1, n) per row, or null when none acts; and whether they scale the input.</summary>
    private (Tensor Scale, bool Input)? Scaling(AdapterRouting routing)
    {
        if (routing.Ia3Rows is { } rows)
        {
            var present = rows.Where(r => r is not null && Has(r) && !merged.Contains(r)).Select(r => r!).Distinct().ToList();
            if (present.Count == 0) return null;
            var input = feedforward[present[0]];
            if (present.Any(p => feedforward[p] != input))
                throw new PeftDslException($"{linear.GetName()}: IA3 adapters {string.Join(", ", present)} scale this projection's input and output differently; they cannot share a batch");
            var n = input ? linear.InFeatures : linear.OutFeatures;
            var stackRows = rows.Select(r => r is not null && present.Contains(r) ? Full(r) : ones(n, dtype: Vector(present[0]).dtype, device: linear.weight.device)).ToList();
            return (stack(stackRows).unsqueeze(1), input);    // (B, 1, n)
        }
        Tensor? scale = null;
        bool? scalesInput = null;
        foreach (var adapter in routing.Ia3Active)
        {
            if (!Has(adapter) || merged.Contains(adapter)) continue;
            if (scalesInput is { } known && known != feedforward[adapter])
                throw new PeftDslException($"{linear.GetName()}: the active IA3 adapters {string.Join(", ", routing.Ia3Active)} scale this projection's input and output differently; activate them one at a time");
            scale = scale is null ? Full(adapter) : scale * Full(adapter);
            scalesInput = feedforward[adapter];
        }
        return scale is null ? null : (scale, scalesInput!.Value);
    }

    /// <summary>True when some adapter of this projection is folded into its weights.</summary>
    public bool AnyMerged => merged.Count > 0;

    /// <summary>True when an IA3 vector acts on this call.</summary>
    public bool Acts(AdapterRouting routing) =>
        !IsEmpty && (routing.Ia3Rows is { } rows ? rows.Any(r => r is not null && Has(r) && !merged.Contains(r))
            : routing.Ia3Active.Any(a => Has(a) && !merged.Contains(a)));

    /// <summary>The projection's output with every acting, unmerged IA3 vector applied: folded into the weight (and bias)
    /// when one vector serves every row, on each row's activations in a mixed batch.</summary>
    /// <param name="x">(B, T, in) the projection's input.</param>
    /// <param name="routing">Which IA3 adapters act on which rows.</param>
    /// <returns>(B, T, out) in the weight's dtype.</returns>
    public Tensor Forward(Tensor x, AdapterRouting routing)
    {
        using var scope = NewDisposeScope();
        if (Scaling(routing) is not { } s) return nn.functional.linear(x, linear.weight, linear.bias).MoveToOuterDisposeScope();
        Tensor y;
        if (s.Scale.dtype != linear.weight.dtype)
        {
            // fp32 vectors on a bf16 base: as peft, the activations are scaled in fp32 and rounded once, so small
            // trained changes of a vector near 1 are not lost to the base dtype's rounding.
            var dt = linear.weight.dtype;
            var scaled = s.Input
                ? nn.functional.linear((x.to(s.Scale.dtype) * s.Scale).to(dt), linear.weight, linear.bias)
                : (nn.functional.linear(x, linear.weight, linear.bias).to(s.Scale.dtype) * s.Scale).to(dt);
            return scaled.MoveToOuterDisposeScope();
        }
        var scale = s.Scale;
        if (scale.dim() == 3)   // one vector per row: scale that row's activations
            y = s.Input ? nn.functional.linear(x * scale, linear.weight, linear.bias) : nn.functional.linear(x, linear.weight, linear.bias) * scale;
        else if (s.Input)       // the input's features are the weight's columns
            y = nn.functional.linear(x, linear.weight * scale, linear.bias);
        else                    // the output's features are the weight's rows and the bias
            y = nn.functional.linear(x, linear.weight * scale.unsqueeze(1), linear.bias is null ? null : linear.bias * scale);
        return y.MoveToOuterDisposeScope();
    }

    /// <summary>Folds an adapter's vector into the weight (and bias, for an output vector).</summary>
    /// <param name="keepOriginal">Keep a copy of the weights for an exact unmerge (not needed by merge-and-unload).</param>
    internal void Merge(string adapter, bool keepOriginal = true)
    {
        if (!Has(adapter) || merged.Contains(adapter)) return;
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        if (keepOriginal) original ??= (linear.weight.detach().clone().DetachFromDisposeScope(), linear.bias?.detach().clone().DetachFromDisposeScope());
        var v = Full(adapter).to(ScalarType.Float32);
        var w = linear.weight.to(ScalarType.Float32);
        if (feedforward[adapter]) linear.weight.copy_(w * v);
        else
        {
            linear.weight.copy_(w * v.unsqueeze(1));
            if (linear.bias is { } b) b.copy_(b.to(ScalarType.Float32) * v);
        }
        merged.Add(adapter);
    }

    /// <summary>Restores the weights saved before the first merge, bit for bit.</summary>
    internal void Unmerge()
    {
        if (original is not { } o) return;
        using var noGrad = no_grad();
        linear.weight.copy_(o.Weight);
        if (o.Bias is { } b) linear.bias!.copy_(b);
        ForgetMerged();
    }

    /// <summary>Keeps the merged weights and drops the saved originals (merge-and-unload).</summary>
    internal void ForgetMerged()
    {
        if (original is { } o)
        {
            o.Weight.Dispose();
            o.Bias?.Dispose();
        }
        original = null;
        merged.Clear();
    }
}
