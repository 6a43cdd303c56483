using PeftDsl.Errors;
using PeftDsl.Modules;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftDsl.Runtime;

/// <summary>
/// What every block of one forward pass shares: attention masks, positions and rotary tables. The stack builds
/// it once, eagerly, inside its own dispose scope, so the tensors outlive every block that reads them; a lazily
/// built tensor would die with the first block's scope.
/// </summary>
public sealed class ForwardContext
{
    private ForwardContext(Tensor positions, Tensor? keyMask, Tensor? causalMask, (Tensor Cos, Tensor Sin)? rotary)
    {
        Positions = positions;
        KeyMask = keyMask;
        CausalMask = causalMask;
        Rotary = rotary;
    }

    /// <summary>(T) int64 positions of the tokens.</summary>
    public Tensor Positions { get; }

    /// <summary>(B, 1, 1, T) bool, true where a key is a real token; null when nothing is padded.</summary>
    public Tensor? KeyMask { get; }

    /// <summary>(B, 1, T, T) bool causal-and-padding mask; null when nothing is padded, so attention can take
    /// <c>is_causal</c> and its fused kernels.</summary>
    public Tensor? CausalMask { get; }

    /// <summary>cos and sin (T, head_dim) when the stack declares rotary embeddings.</summary>
    public (Tensor Cos, Tensor Sin)? Rotary { get; }

    /// <param name="hidden">(B, T, C) embeddings; fixes batch, length, device and dtype.</param>
    /// <param name="attentionMask">(B, T) with 1 for real tokens and 0 for padding, or null.</param>
    public static ForwardContext Create(Tensor hidden, Tensor? attentionMask, RotaryEmbedding? rotary)
    {
        long batch = hidden.shape[0], length = hidden.shape[1];
        var device = hidden.device;
        var positions = arange(length, dtype: ScalarType.Int64, device: device);
        Tensor? keyMask = null, causalMask = null;
        if (attentionMask is not null)
        {
            if (attentionMask.dim() != 2 || attentionMask.shape[0] != batch || attentionMask.shape[1] != length)
                throw new PeftDslException(
                    $"attention_mask has shape [{string.Join(", ", attentionMask.shape)}], expected [{batch}, {length}] to match the input");
            keyMask = attentionMask.to(ScalarType.Bool, device).view(batch, 1, 1, length);
            using var scope = NewDisposeScope();
            var causal = ones(length, length, dtype: ScalarType.Bool, device: device).tril();
            // A query always sees itself, so a fully padded row never makes softmax NaN (left padding);
            // padded positions are never keys for real tokens, so real outputs are unchanged.
            var diagonal = eye(length, dtype: ScalarType.Bool, device: device);
            causalMask = ((causal & keyMask) | diagonal).MoveToOuterDisposeScope();   // (B, 1, T, T)
        }
        var tables = rotary?.Tables(positions, hidden.dtype);
        return new ForwardContext(positions, keyMask, causalMask, tables);
    }
}
