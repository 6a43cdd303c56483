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

    public PrefixEncoder(PromptConfig config) : base(nameof(PrefixEncoder), config)
    {
        long d = config.TokenDim, h = config.EffectiveEncoderHidden;
        embedding = new Modules.Embedding(config.TotalVirtualTokens, d);
        using (no_grad()) embedding.weight.normal_();
        register_module("embedding", embedding);
        transform = nn.Sequential(("0", nn.Linear(d, h)), ("1", nn.Tanh()), ("2", nn.Linear(h, config.RowWidth)));
        register_module("transform", transform);
    }

    public readonly Modules.Embedding embedding;

    public override bool HasEncoder => true;

    public override Tensor Rows() => transform.forward(embedding.weight);
}
