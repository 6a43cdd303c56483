using TorchSharp;
using static TorchSharp.torch;

namespace PeftDsl.Runtime;

/// <summary>Language-model losses with transformers' conventions.</summary>
public static class Losses
{
    public const long IgnoreIndex = -100;

    /// <summary>Next-token cross-entropy: logits at t predict labels at t+1; labels of -100 are ignored and the
    /// mean is over the rest. Computed in fp32 whatever the logits' dtype.</summary>
    /// <param name="logits">(B, T, V)</param>
    /// <param name="labels">(B, T) int64</param>
    public static Tensor CausalLM(Tensor logits, Tensor labels)
    {
        using var scope = NewDisposeScope();
        var length = logits.shape[1];
        return Aligned(logits.narrow(1, 0, length - 1), labels.narrow(1, 1, length - 1)).MoveToOuterDisposeScope();
    }

    /// <summary>Cross-entropy of decoder logits against labels aligned with them (no shift: the decoder input is
    /// already the labels shifted right). Labels of -100 are ignored.</summary>
    /// <param name="logits">(B, T, V)</param>
    /// <param name="labels">(B, T) int64</param>
    public static Tensor Aligned(Tensor logits, Tensor labels)
    {
        using var scope = NewDisposeScope();
        var flat = logits.reshape(-1, logits.shape[2]).to(ScalarType.Float32);
        return nn.functional.cross_entropy(flat, labels.reshape(-1).to(logits.device), ignore_index: IgnoreIndex)
            .MoveToOuterDisposeScope();
    }
}
