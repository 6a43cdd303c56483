using TorchSharp;
using static TorchSharp.torch;

namespace PeftDsl.Training;

/// <summary>
/// AdamW on one flat buffer: torch.optim.AdamW's update (decoupled weight decay, bias-corrected moments), in a
/// handful of ops whatever the number of adapter tensors, with its state (two flat moments and the step count) open
/// for checkpoints.
/// </summary>
public sealed class FlatAdamW : IDisposable
{
    private readonly FlatParameters parameters;

    public FlatAdamW(FlatParameters parameters, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8, double weightDecay = 0.01)
    {
        this.parameters = parameters;
        (Beta1, Beta2, Eps, WeightDecay) = (beta1, beta2, eps, weightDecay);
        ExpAvg = zeros_like(parameters.Values).DetachFromDisposeScope();
        ExpAvgSq = zeros_like(parameters.Values).DetachFromDisposeScope();
    }

    public double Beta1 { get; }

    public double Beta2 { get; }

    public double Eps { get; }

    public double WeightDecay { get; }

    /// <summary>Updates taken so far (the bias corrections depend on it).</summary>
    public long Steps { get; private set; }

    public Tensor ExpAvg { get; }

    public Tensor ExpAvgSq { get; }

    public void Step(double lr)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        Steps++;
        var p = parameters.Values;
        var g = parameters.Grads;
        if (WeightDecay != 0) p.mul_(1 - lr * WeightDecay);
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

    public void Dispose()
    {
        ExpAvg.Dispose();
        ExpAvgSq.Dispose();
    }
}
