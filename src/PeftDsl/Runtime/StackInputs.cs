using PeftDsl.Peft;
using static TorchSharp.torch;

namespace PeftDsl.Runtime;

/// <summary>What a stack's forward takes besides its token ids.</summary>
/// <param name="AttentionMask">(B, past + T): 1 for tokens and 0 for padding, covering cached tokens too; or null.</param>
/// <param name="EncoderHidden">(B, S, C) encoder output, for a decoder stack's cross-attention.</param>
/// <param name="EncoderMask">(B, S) encoder padding mask, or null.</param>
/// <param name="Cache">Keys and values of earlier steps, extended in place; null to recompute everything.</param>
/// <param name="Routing">Which adapters act on which rows; null runs the base model alone. The root fills it.</param>
/// <param name="Prompts">Virtual tokens the stack's virtual-prompt site writes before the token embeddings (the mask
/// already covers them); null for none. The root fills it for the stack that takes the prompt.</param>
/// <param name="BaseDropout">The root's <see cref="LanguageModel.BaseDropout"/>: null keeps the configured rates.</param>
/// <param name="Packed">Several examples per row (<c>--packing</c>): positions restart per example and attention stays
/// inside it; null for one example per row.</param>
/// <param name="Checkpoint">The root's <see cref="LanguageModel.GradientCheckpointing"/>: in training with gradients, each
/// block keeps only its input and is recomputed in backward (<see cref="ActivationCheckpoint"/>).</param>
public sealed record StackInputs(Tensor? AttentionMask = null, Tensor? EncoderHidden = null, Tensor? EncoderMask = null,
    KvCache? Cache = null, AdapterRouting? Routing = null, Peft.Prompts.VirtualTokens? Prompts = null, double? BaseDropout = null,
    PackedSequences? Packed = null, bool Checkpoint = false);
