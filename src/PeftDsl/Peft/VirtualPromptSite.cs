using PeftDsl.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftDsl.Peft;

/// <summary>
/// The input-embedding site where prompt tuning and P-tuning prepend virtual tokens. It is a registered module
/// (<c>transformer.virtual_prompt</c>), so prompt tables put here move with the model and stay out of the base
/// checkpoint. With no prompt attached it passes the embeddings and the inputs through.
/// </summary>
public sealed class VirtualPromptSite : nn.Module, IPeftTensors
{
    public VirtualPromptSite() : base(nameof(VirtualPromptSite))
    {
    }

    /// <param name="embeddings">(B, T, C) token embeddings.</param>
    /// <param name="inputs">The stack's inputs; the routing says which task each row belongs to.</param>
    /// <returns>(B, T', C) embeddings and the inputs with a mask covering any prepended tokens.</returns>
    public (Tensor Embeddings, StackInputs Inputs) Prepend(Tensor embeddings, StackInputs inputs) => (embeddings, inputs);

    protected override void RegisterComponents()
    {
    }
}
