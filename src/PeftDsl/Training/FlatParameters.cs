using PeftDsl.Errors;
using PeftDsl.Peft;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftDsl.Training;

/// <summary>
/// Every trainable tensor of a model as a slice of one flat fp32 parameter, and every gradient as a slice of one
/// flat gradient, so that the optimizer, clipping and zeroing are a few ops on one tensor. The module tensors keep
/// their identity (state-dict names, <c>requires_grad</c>): only their storage moves into the flat buffer.
/// </summary>
public sealed class FlatParameters : IDisposable
{
    private FlatParameters(IReadOnlyList<SelectedParameter> members, Tensor values, Tensor grads)
    {
        Members = members;
        Values = values;
        Grads = grads;
    }

    /// <summary>The trainable tensors, in model order; their storage is in <see cref="Values"/>.</summary>
    public IReadOnlyList<SelectedParameter> Members { get; }

    /// <summary>(N) all trainable values.</summary>
    public Tensor Values { get; }

    /// <summary>(N) all gradients; backward accumulates into it in place.</summary>
    public Tensor Grads { get; }

    /// <summary>N, the number of trainable scalars (the length of <see cref="Values"/>).</summary>
    public long Count => Values.shape[0];

    /// <summary>Moves the storage of every parameter that requires a gradient into one flat buffer. Call it after the
    /// model is on its device and the adapters are attached, and do not move the model afterwards.</summary>
    public static FlatParameters Of(nn.Module model)
    {
        var members = model.TrainableParameters();
        if (members.Count == 0) throw new PeftDslException("nothing to train: no parameter requires a gradient (add or load an adapter with trainable: true)");
        var first = members[0].Parameter;
        if (members.FirstOrDefault(m => m.Parameter.dtype != ScalarType.Float32) is { } other)
            throw new PeftDslException($"{other.Name} is {other.Parameter.dtype}: trainable tensors must be fp32 (adapters are fp32 on a bf16 base)");
        if (members.FirstOrDefault(m => m.Parameter.device.type != first.device.type || m.Parameter.device.index != first.device.index) is { } away)
            throw new PeftDslException($"{away.Name} is on {away.Parameter.device}, {members[0].Name} on {first.device}: move the model first");
        var total = members.Sum(m => m.Parameter.NumberOfElements);
        var values = zeros(total, dtype: ScalarType.Float32, device: first.device).DetachFromDisposeScope();
        var grads = zeros(total, dtype: ScalarType.Float32, device: first.device).DetachFromDisposeScope();
        using (no_grad())
        {
            long offset = 0;
            foreach (var m in members)
            {
                var p = m.Parameter;
                var n = p.NumberOfElements;
                using var slice = values.narrow(0, offset, n).view(p.shape);
                slice.copy_(p);
                p.set_(slice);
                p.grad = grads.narrow(0, offset, n).view(p.shape);
                offset += n;
            }
        }
        return new FlatParameters(members, values, grads);
    }

    /// <summary>(N) 1 over the members <paramref name="selected"/> chooses and 0 over the others, for per-group
    /// optimizer settings such as weight decay; the caller owns it.</summary>
    public Tensor Mask(Func<SelectedParameter, bool> selected)
    {
        using var noGrad = no_grad();
        var mask = zeros(Count, dtype: ScalarType.Float32, device: Values.device).DetachFromDisposeScope();
        long offset = 0;
        foreach (var m in Members)
        {
            var n = m.Parameter.NumberOfElements;
            if (selected(m))
                using (var slice = mask.narrow(0, offset, n)) slice.fill_(1);
            offset += n;
        }
        return mask;
    }

    /// <summary>Zeroes every gradient (one op).</summary>
    public void ZeroGrad()
    {
        using var noGrad = no_grad();
        Grads.zero_();
    }

    /// <summary>Scales the gradients so their global L2 norm is at most <paramref name="maxNorm"/>; returns the norm
    /// before clipping (a tensor: reading it would synchronise a GPU).</summary>
    public Tensor ClipGradNorm(double maxNorm)
    {
        using var noGrad = no_grad();
        var norm = Grads.norm();
        if (maxNorm > 0 && double.IsFinite(maxNorm))
            Grads.mul_((maxNorm / (norm + 1e-6)).clamp_max(1.0));
        return norm;
    }

    /// <summary>Releases the flat value and gradient tensors.</summary>
    public void Dispose()
    {
        Values.Dispose();
        Grads.Dispose();
    }
}
