using TorchSharp;
using static TorchSharp.torch;

namespace PeftDsl.Runtime;

/// <summary>Language-model losses with transformers' conventions.</summary>
public static class Losses
{
    /// <summary>The label that takes no loss (PyTorch's <c>ignore_index</c>, -100): padding, prompt tokens, virtual tokens.</summary>
    public const long IgnoreIndex = -100;

    /// <summary>Next-token cross-entropy: logits at t predict labels at t+1; labels of -100 are ignored and the
    /// mean is over the rest. Computed in fp32 whatever the logits' dtype.</summary>
    /// <param name="logits">(B, T, V)</param>
    /// <param name="labels">(B, T) int64</param>
    public static Tensor CausalLM(Tensor logits, Tensor labels)
    {
        using var scope = NewDisposeScope();
        // Shift the labels, not the logits: a narrowed (B, T−1, V) view would be copied whole by the flattening,
        // while the last position's prediction simply gets the ignored label.
        var shifted = cat([labels.narrow(1, 1, labels.shape[1] - 1),
                           full(labels.shape[0], 1, IgnoreIndex, dtype: labels.dtype, device: labels.device)], 1);
        return Aligned(logits, shifted).MoveToOuterDisposeScope();
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
