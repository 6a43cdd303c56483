using TorchSharp;
using static TorchSharp.torch;

namespace PeftDsl.Modules;

/// <summary>How a freshly built model's weights start.</summary>
public enum WeightInit
{
    /// <summary>Normal(0, 0.02) for projections and embeddings, zero biases, unit norms (GPT-2/Llama style).</summary>
    Normal,
    /// <summary>Left uninitialised because a checkpoint will overwrite every weight.</summary>
    None,
}

/// <summary>Initialises a freshly built model's base weights (training from scratch, tests); not needed before a checkpoint load.</summary>
public static class WeightInitializer
{
    /// <summary>Standard deviation of the normal initialisation (transformers' <c>initializer_range</c> default, 0.02).</summary>
    public const double Std = 0.02;

    /// <summary>Initialises every base module of <paramref name="model"/> as <paramref name="init"/> says: projections,
    /// embeddings, relative biases and an untied head normal(0, <see cref="Std"/>), biases zero, norm weights one.
    /// <c>WeightInit.None</c> does nothing.</summary>
    public static void Apply(nn.Module model, WeightInit init)
    {
        if (init == WeightInit.None) return;
        using var noGrad = no_grad();
        foreach (var (_, module) in Checkpoints.CheckpointLayout.ModulesWithRoot(model))
        {
            switch (module)
            {
                case PeftLinear linear:
                    nn.init.normal_(linear.weight, 0, Std);
                    if (linear.bias is not null) nn.init.zeros_(linear.bias);
                    break;
                case Embedding embedding:
                    nn.init.normal_(embedding.weight, 0, Std);
                    break;
                case RelativePositionBias bias:
                    nn.init.normal_(bias.weight, 0, Std);
                    break;
                case LmHead { weight: { } weight }:
                    nn.init.normal_(weight, 0, Std);
                    break;
                case LayerNorm norm:
                    nn.init.ones_(norm.weight);
                    nn.init.zeros_(norm.bias);
                    break;
                case RmsNorm norm:
                    nn.init.ones_(norm.weight);
                    break;
                case GemmaRmsNorm norm:
                    nn.init.zeros_(norm.weight);
                    break;
            }
        }
    }
}
