using TorchSharp;
using static TorchSharp.torch;

namespace PeftDsl.Peft.Prompts;

/// <summary>
/// Prefix tuning with <c>prefix_projection</c>: peft's <c>embedding</c> (P × d) through <c>transform</c> =
/// Linear(d, h), Tanh, Linear(h, 2 × layers × d). Without projection the rows are the parameters
/// (<see cref="PromptEmbeddingTask"/>).
/// </summary>
public sealed class PrefixEncoder : PromptTask
{
    private readonly nn.Module<Tensor, Tensor> transform;

    /// <summary>Builds the table (N(0, 1)) and peft's <c>transform</c>, Linear(d, h), Tanh, Linear(h, 2 × layers × d).</summary>
    public PrefixEncoder(PromptConfig config) : base(nameof(PrefixEncoder), config)
    {
        long d = config.TokenDim, h = config.EffectiveEncoderHidden;
        embedding = new Modules.Embedding(config.TotalVirtualTokens, d);
        using (no_grad()) embedding.weight.normal_();
        register_module("embedding", embedding);
        transform = nn.Sequential(("0", nn.Linear(d, h)), ("1", nn.Tanh()), ("2", nn.Linear(h, config.RowWidth)));
        register_module("transform", transform);
    }

    /// <summary>The table, [virtual tokens, token dim] (peft's <c>embedding</c>), read through <c>transform</c>.</summary>
    public readonly Modules.Embedding embedding;

    /// <inheritdoc/>
    public override bool HasEncoder => true;

    /// <summary>The table through <c>transform</c>: (virtual tokens, 2 × layers × token dim), every layer's key and value.</summary>
    public override Tensor Rows() => transform.forward(embedding.weight);
}
