using TorchSharp;
using static TorchSharp.torch;

namespace PeftDsl.Generation;

/// <summary>Picks the next token of every row from its logits: argmax, or a seeded draw after temperature,
/// top-k and top-p filtering.</summary>
public sealed class TokenSampler : IDisposable
{
    private readonly GenerationOptions options;
    private readonly torch.Generator? generator;

    /// <summary>A sampler for <paramref name="options"/>; with sampling and a <c>Seed</c>, draws come from a generator
    /// on <paramref name="device"/> seeded with it, otherwise from torch's global generator.</summary>
    public TokenSampler(GenerationOptions options, Device device)
    {
        this.options = options;
        if (options.DoSample)
            generator = options.Seed is { } seed ? new torch.Generator(seed, device) : null;
    }

    /// <param name="logits">(B, V)</param>
    /// <returns>(B) int64 token ids.</returns>
    public Tensor Pick(Tensor logits)
    {
        using var scope = NewDisposeScope();
        if (!options.DoSample) return logits.argmax(-1).MoveToOuterDisposeScope();
        var scores = logits.to(ScalarType.Float32) / options.Temperature;
        if (options.TopK > 0 && options.TopK < scores.shape[^1])
        {
            var kth = scores.topk(options.TopK, dim: -1).values.narrow(-1, options.TopK - 1, 1);   // (B, 1)
            scores = scores.masked_fill(scores < kth, float.NegativeInfinity);
        }
        if (options.TopP < 1.0)
        {
            var (sorted, order) = scores.sort(-1, descending: true);
            var probs = sorted.softmax(-1);
            // Keep a token while the mass of the tokens above it is still short of p: the most likely one always stays.
            var remove = (probs.cumsum(-1) - probs) >= options.TopP;
            scores = scores.scatter(-1, order, sorted.masked_fill(remove, float.NegativeInfinity));
        }
        return multinomial(scores.softmax(-1), 1, false, generator).squeeze(-1).MoveToOuterDisposeScope();
    }

    /// <summary>Frees the seeded generator, if any.</summary>
    public void Dispose() => generator?.Dispose();
}
