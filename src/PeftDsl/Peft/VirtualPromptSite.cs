using static TorchSharp.torch;

namespace PeftDsl.Peft;

/// <summary>
/// The input-embedding site where prompt tuning and P-tuning prepend virtual tokens. With no prompt attached it
/// passes the embeddings and the attention mask through.
/// </summary>
public sealed class VirtualPromptSite
{
    public (Tensor Embeddings, Tensor? AttentionMask) Prepend(Tensor embeddings, Tensor? attentionMask) =>
        (embeddings, attentionMask);
}
