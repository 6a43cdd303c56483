using TorchSharp;
using static TorchSharp.torch;

namespace PeftDsl.Training;

/// <summary>
/// AdamW on one flat buffer: torch.optim.AdamW's update (decoupled weight decay, bias-corrected moments), in a
/// handful of ops whatever the number of adapter tensors, with its state (two flat moments and the step count) open
/// for checkpoints. Weight decay acts on the elements its mask marks (two parameter groups, as the Trainer makes them).
/// </summary>
public sealed class FlatAdamW : IDisposable
{
    private readonly FlatParameters parameters;
    private readonly Tensor? decayMask;

    /// <summary>AdamW over the flat buffer, moments at zero; the defaults are torch.optim.AdamW's, but for weight decay,
    /// which is 0 as in Hugging Face's Trainer.</summary>
    /// <param name="parameters">The trainable values and gradients; the values are updated in place.</param>
    /// <param name="decayMask">(N) 1 where weight decay acts and 0 where it does not (<see cref="FlatParameters.Mask"/>);
    /// null decays every element.</param>
    public FlatAdamW(FlatParameters parameters, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8, double weightDecay = 0,
        Tensor? decayMask = null)
    {
        this.parameters = parameters;
        this.decayMask = decayMask;
        (Beta1, Beta2, Eps, WeightDecay) = (beta1, beta2, eps, weightDecay);
        ExpAvg = zeros_like(parameters.Values).DetachFromDisposeScope();
        ExpAvgSq = zeros_like(parameters.Values).DetachFromDisposeScope();
    }

    /// <summary>Decay rate of the first moment, the gradient's running mean (torch's <c>betas[0]</c>).</summary>
    public double Beta1 { get; }

    /// <summary>Decay rate of the second moment, the squared gradient's running mean (torch's <c>betas[1]</c>).</summary>
    public double Beta2 { get; }

    /// <summary>Added to the bias-corrected square root of the second moment, so the denominator is never 0.</summary>
    public double Eps { get; }

    /// <summary>Decoupled weight decay: each step first multiplies the parameters by 1 − lr × weight decay.</summary>
    public double WeightDecay { get; }

    /// <summary>Updates taken so far (the bias corrections depend on it).</summary>
    public long Steps { get; private set; }

    /// <summary>(N) first moment, torch's <c>exp_avg</c>, one element per trainable scalar; saved in checkpoints.</summary>
    public Tensor ExpAvg { get; }

    /// <summary>(N) second moment, torch's <c>exp_avg_sq</c>; saved in checkpoints.</summary>
    public Tensor ExpAvgSq { get; }

    /// <summary>One AdamW update from the current gradients at learning rate <paramref name="lr"/>; increments <see cref="Steps"/>.</summary>
    public void Step(double lr)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        Steps++;
        var p = parameters.Values;
        var g = parameters.Grads;
        if (WeightDecay != 0)
        {
            if (decayMask is null) p.mul_(1 - lr * WeightDecay);
            else p.addcmul_(p, decayMask, -lr * WeightDecay);   // p ← p − lr·λ·p on the decayed elements only
        }
        ExpAvg.mul_(Beta1).add_(g, 1 - Beta1);
        ExpAvgSq.mul_(Beta2).addcmul_(g, g, 1 - Beta2);
        var correction1 = 1 - Math.Pow(Beta1, Steps);
        var correction2 = 1 - Math.Pow(Beta2, Steps);
        var denominator = ExpAvgSq.sqrt().div_(Math.Sqrt(correction2)).add_(Eps);
        p.addcdiv_(ExpAvg, denominator, -lr / correction1);
    }

    /// <summary>Restores a saved state (moments and step count).</summary>
    public void Load(Tensor expAvg, Tensor expAvgSq, long steps)
    {
        using var noGrad = no_grad();
        ExpAvg.copy_(expAvg);
        ExpAvgSq.copy_(expAvgSq);
        Steps = steps;
    }

    /// <summary>Frees the two moment buffers and the decay mask (the parameters belong to <c>FlatParameters</c>).</summary>
    public void Dispose()
    {
        ExpAvg.Dispose();
        ExpAvgSq.Dispose();
        decayMask?.Dispose();
    }
}
