using PeftDsl.Errors;
using PeftDsl.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftDsl.Peft;

/// <summary>
/// The input-embedding site where prompt tuning and P-tuning prepend virtual tokens. The root computes the call's
/// virtual tokens once (<see cref="StackInputs.Prompts"/>) and extends the attention mask; this site writes them in
/// front of the token embeddings with one concatenation. On cached decoding steps there is nothing to write: the
/// cache holds them. With no prompt it passes the embeddings through.
/// </summary>
public sealed class VirtualPromptSite : nn.Module, IPeftTensors
{
    /// <summary>A stateless site: each call's virtual tokens come with its <c>StackInputs</c>.</summary>
    public VirtualPromptSite() : base(nameof(VirtualPromptSite))
    {
    }

    /// <param name="embeddings">(B, T, C) token embeddings.</param>
    /// <param name="inputs">The stack's inputs, whose <see cref="StackInputs.Prompts"/> says what to write.</param>
    /// <returns>(B, P + T, C) embeddings (or the input unchanged) and the inputs.</returns>
    public (Tensor Embeddings, StackInputs Inputs) Prepend(Tensor embeddings, StackInputs inputs)
    {
        if (inputs.Prompts is { Slots: { } slots, SlotRows: { } rows })
        {
            // NeMo's markers: each slot takes its virtual token's row, one gather and one select for the batch.
            var index = slots.clamp_min(0).unsqueeze(-1).expand(-1, -1, embeddings.shape[2]);   // (B, T, C)
            var written = rows.to(embeddings.dtype).gather(1, index);
            return (where(slots.ge(0).unsqueeze(-1), written, embeddings), inputs);
        }
        if (inputs.Prompts?.Embeddings is not { } prompts) return (embeddings, inputs);
        if (prompts.shape[0] != embeddings.shape[0] || prompts.shape[2] != embeddings.shape[2])
            throw new PeftDslException($"virtual tokens have shape [{string.Join(", ", prompts.shape)}], the embeddings " +
                                       $"[{string.Join(", ", embeddings.shape)}]: the prompt was made for another model");
        // fp32 prompt rows on a bf16 base are cast here, the one place they meet the model's activations.
        return (cat([prompts.to(embeddings.dtype), embeddings], 1), inputs);
    }

    /// <summary>Empty on purpose: the site has no parameters or submodules of its own.</summary>
    protected override void RegisterComponents()
    {
    }
}
