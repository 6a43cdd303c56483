using PeftDsl.Modules;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftDsl.Runtime;

/// <summary>
/// The LM head and the next-token cross-entropy in chunks of positions, so that the (B, T, V) logits never exist
/// (torchtune's chunked loss, Liger's fused linear cross-entropy, without a custom kernel). Each chunk runs the head,
/// sums its cross-entropy, and at once takes that sum's gradient with respect to its hidden states and the head's
/// trainable tensors; the chunk's logits are then freed. The returned loss carries those gradients into the graph
/// through a term whose value is zero and whose gradient is theirs, so backward continues from the hidden states as
/// the plain path would, and the head's gradients arrive too. Evaluation (no gradients) only sums.
/// </summary>
public static class ChunkedLoss
{
    /// <summary>Positions per chunk for a vocabulary: about 256 MiB of fp32 logits (2,097 positions of Llama 2's 32,000
    /// entries, 256 of Gemma 3's 262,144), at least 16. Every chunk reads the whole head weight again, so much smaller
    /// chunks trade memory for time: at 64 MiB, Gemma 3 1B's evaluation pass on the CPU took 35 s instead of 21.</summary>
    public static long DefaultChunk(long vocab) => Math.Clamp((256L << 20) / (4 * Math.Max(1, vocab)), 16, 1L << 20);

    /// <summary>The mean cross-entropy of <paramref name="head"/>(<paramref name="hidden"/>) at t against
    /// <paramref name="labels"/> at t + 1 (-100 ignored), as <see cref="Losses.CausalLM"/>.</summary>
    /// <param name="hidden">(B, T, C) final hidden states.</param>
    /// <param name="labels">(B, T) aligned with <paramref name="hidden"/>.</param>
    /// <param name="chunk">Positions per chunk.</param>
    public static Tensor Compute(LmHead head, Tensor hidden, Tensor labels, long chunk)
    {
        using var scope = NewDisposeScope();
        long batch = hidden.shape[0], length = hidden.shape[1], width = hidden.shape[2];
        var shifted = cat([labels.narrow(1, 1, length - 1), full(batch, 1, Losses.IgnoreIndex, dtype: labels.dtype, device: labels.device)], 1)
            .reshape(-1).to(hidden.device);
        var targets = shifted.ne(Losses.IgnoreIndex).sum().item<long>();
        var rows = batch * length;
        // One chunk, or nothing to average (the plain path's NaN): the plain path is the same computation.
        if (rows <= chunk || targets == 0) return Losses.CausalLM(head.forward(hidden), labels).MoveToOuterDisposeScope();

        var flat = hidden.reshape(-1, width);
        var parameters = head.TrainableTensors().ToList();
        var needGrad = is_grad_enabled() && (hidden.requires_grad || parameters.Count > 0);
        var total = zeros(1, dtype: ScalarType.Float32, device: hidden.device);
        var hiddenGrad = needGrad ? zeros_like(flat) : null;
        var parameterGrads = needGrad ? parameters.Select(p => zeros_like(p)).ToArray() : [];
        for (long start = 0; start < rows; start += chunk)
        {
            using var step = NewDisposeScope();
            var n = Math.Min(chunk, rows - start);
            var part = shifted.narrow(0, start, n);
            var input = flat.narrow(0, start, n).detach();
            if (needGrad) input.requires_grad_(true);
            var logits = head.forward(input).to(ScalarType.Float32);                                          // (n, V): this chunk only
            var sum = nn.functional.cross_entropy(logits, part, ignore_index: Losses.IgnoreIndex, reduction: nn.Reduction.Sum);
            if (needGrad && part.ne(Losses.IgnoreIndex).any().item<bool>())
            {
                var grads = autograd.grad([sum], [input, .. parameters], allow_unused: true);
                hiddenGrad!.narrow(0, start, n).copy_(grads[0]);
                for (var i = 0; i < parameters.Count; i++)
                    if (grads[i + 1] is { } g && !g.IsInvalid) parameterGrads[i].add_(g);
            }
            total.add_(sum.detach());
        }
        var loss = (total / targets).squeeze();
        if (!needGrad) return loss.MoveToOuterDisposeScope();
        // Value zero, gradient the chunks' gradients (over the mean's count): backward goes on from here as usual.
        var carrier = (flat * hiddenGrad!).sum();
        for (var i = 0; i < parameters.Count; i++) carrier = carrier + (parameters[i] * parameterGrads[i]).sum();
        return (loss + (carrier - carrier.detach()) / targets).MoveToOuterDisposeScope();
    }
}
