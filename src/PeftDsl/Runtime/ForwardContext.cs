using PeftDsl.Errors;
using PeftDsl.Modules;
using PeftDsl.Peft;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftDsl.Runtime;

/// <summary>
/// What every block of one stack's forward pass shares: masks, positions, rotary tables, the encoder output,
/// the KV cache and T5's shared position bias. The stack builds it once, eagerly, inside its own dispose scope,
/// so the tensors outlive every block that reads them; the position bias, made by the first layer, is owned here.
/// </summary>
public sealed class ForwardContext : IDisposable
{
    private Tensor? positionBias;

    private ForwardContext(long length, long pastLength, Tensor positions, Tensor? keyMask, Tensor? causalMask,
        (Tensor Cos, Tensor SignedSin)? rotary, Tensor? encoderHidden, Tensor? encoderKeyMask, KvCache? cache, AdapterRouting routing)
    {
        Routing = routing;
        Length = length;
        PastLength = pastLength;
        Positions = positions;
        KeyMask = keyMask;
        CausalMask = causalMask;
        Rotary = rotary;
        EncoderHidden = encoderHidden;
        EncoderKeyMask = encoderKeyMask;
        Cache = cache;
    }

    /// <summary>Tokens in this pass (T).</summary>
    public long Length { get; }

    /// <summary>Tokens before this pass, held in <see cref="Cache"/>.</summary>
    public long PastLength { get; }

    /// <summary>(B or 1, T) int64 positions. With an attention mask they count real tokens only, so a left-padded
    /// row gets the positions it would have alone.</summary>
    public Tensor Positions { get; }

    /// <summary>(B, 1, 1, past + T) bool, true where a key is a real token; null when nothing is padded.</summary>
    public Tensor? KeyMask { get; }

    /// <summary>(B or 1, 1, T, past + T) bool causal mask (with padding); null when <c>is_causal</c> suffices.</summary>
    public Tensor? CausalMask { get; }

    /// <summary>cos and signed sin (B or 1, 1, T, rotary dim; see <see cref="RotaryEmbedding.Tables"/>) when the stack
    /// declares rotary embeddings.</summary>
    public (Tensor Cos, Tensor SignedSin)? Rotary { get; }

    /// <summary>The sliding-window layers' own tables (Gemma 3's <c>rope_local_base_freq</c>), when the stack declares them.</summary>
    public (Tensor Cos, Tensor SignedSin)? LocalRotary { get; private init; }

    private long rotaryHeadDim;

    /// <summary>The rotary tables for an attention whose heads are <paramref name="headDim"/> wide: the stack's
    /// [RotaryEmbedding] must be for that head size (when both are bound to config values, only the run can tell).</summary>
    /// <param name="local">A sliding-window layer: it takes the stack's local tables when there are any.</param>
    public (Tensor Cos, Tensor SignedSin) RotaryTables(long headDim, string module, bool local = false)
    {
        if ((local && LocalRotary is not null ? LocalRotary : Rotary) is not { } tables)
            throw new InvalidOperationException("rotary tables missing: the stack declares no [RotaryEmbedding]");
        if (rotaryHeadDim != headDim)
            throw new ConfigException($"{module}: the stack's rotary embedding is for heads of {rotaryHeadDim}, but this attention's heads are " +
                                      $"{headDim}; the [RotaryEmbedding] HeadDim and the attention's head size must be the same value");
        return tables;
    }

    /// <summary>(B, S, C) encoder output for cross-attention.</summary>
    public Tensor? EncoderHidden { get; }

    /// <summary>(B, 1, 1, S) bool encoder padding mask, or null.</summary>
    public Tensor? EncoderKeyMask { get; }

    /// <summary>The decoding cache the layers append their keys and values to; null in training and uncached passes.</summary>
    public KvCache? Cache { get; }

    /// <summary>Which adapters act on which rows: every projection of the stack receives it.</summary>
    public AdapterRouting Routing { get; }

    /// <summary>Replaces every configured base-model dropout rate in training when set (<see cref="Modules.BaseDropout"/>).</summary>
    public double? BaseDropout { get; private init; }

    /// <summary>Blocks run through <see cref="ActivationCheckpoint"/> in training (<see cref="StackInputs.Checkpoint"/>).</summary>
    public bool Checkpointing { get; private init; }

    /// <summary>Runs one block of the stack: plainly, or checkpointed when <see cref="Checkpointing"/> is on and
    /// gradients are recorded.</summary>
    public Tensor RunBlock(nn.Module<Tensor, ForwardContext, Tensor> block, Tensor x) =>
        Checkpointing ? ActivationCheckpoint.Run(block, x, this) : block.forward(x, this);

    // A checkpointed block's copy owns aliases of the tensors above, so that they outlive the stack's dispose scope
    // until the block's recompute in backward; the stack's own context owns none of them.
    private bool ownsTensors;

    /// <summary>A copy of this context for one checkpointed block's recompute: the same values under handles of its
    /// own, disposed with it. It never checkpoints again, and <paramref name="encoderHidden"/> replaces the encoder
    /// output (the recompute's detached input).</summary>
    internal ForwardContext ForReplay(Tensor? encoderHidden)
    {
        static Tensor? Own(Tensor? t) => t?.alias().DetachFromDisposeScope();
        static (Tensor, Tensor)? OwnPair((Tensor Cos, Tensor SignedSin)? p) => p is { } q ? (Own(q.Cos)!, Own(q.SignedSin)!) : null;
        return new ForwardContext(Length, PastLength, Own(Positions)!, Own(KeyMask), Own(CausalMask), OwnPair(Rotary), encoderHidden,
            Own(EncoderKeyMask), Cache, Routing.WithRowSlots(Own(Routing.RowSlots)))
        {
            rotaryHeadDim = rotaryHeadDim, BaseDropout = BaseDropout, LocalRotary = OwnPair(LocalRotary), ownsTensors = true,
            positionBias = Own(positionBias), windowMask = Own(windowMask), windowMaskSize = windowMaskSize,
        };
    }

    /// <summary>After a checkpointed block ran on <paramref name="replay"/>: the position bias it computed (T5's first
    /// layer) becomes the stack's, for the blocks after it.</summary>
    internal void AdoptPositionBias(ForwardContext replay)
    {
        if (positionBias is null && replay.positionBias is { } bias) positionBias = bias.alias().DetachFromDisposeScope();
    }

    /// <summary>The mask a self-attention layer passes to SDPA.</summary>
    /// <param name="window">Sliding-window attention (Mistral's <c>sliding_window</c>): a query at absolute index i sees
    /// keys j with i − window &lt; j ≤ i, as transformers masks it (indices count every position, padding and virtual
    /// tokens included); 0 for none. The cache keeps every key; the mask alone applies the window.</param>
    public AttentionMask SelfAttentionMask(bool causal, long window = 0)
    {
        if (causal && window > 0 && PastLength + Length > window) return new(WindowMask(window), false);
        return !causal ? new(KeyMask, false)
            : CausalMask is not null ? new(CausalMask, false)
            // One new token after a cache sees every key; the first pass is plain causal.
            : new(null, PastLength == 0 && Length > 1);
    }

    private Tensor? windowMask;
    private long windowMaskSize;

    /// <summary>The causal (and padding) mask cut to the window, made once per stack pass and shared by its layers.</summary>
    private Tensor WindowMask(long window)
    {
        if (windowMask is not null && windowMaskSize == window) return windowMask;
        using var scope = NewDisposeScope();
        var total = PastLength + Length;
        var device = Positions.device;
        var query = arange(PastLength, total, dtype: ScalarType.Int64, device: device).unsqueeze(1);   // (T, 1)
        var key = arange(0, total, dtype: ScalarType.Int64, device: device).unsqueeze(0);              // (1, past + T)
        var inWindow = (query - key).lt(window).view(1, 1, Length, total);
        var causal = CausalMask ?? ones(Length, total, dtype: ScalarType.Bool, device: device).tril(PastLength).view(1, 1, Length, total);
        windowMask?.Dispose();
        windowMask = (causal & inWindow).DetachFromDisposeScope();
        windowMaskSize = window;
        return windowMask;
    }

    /// <summary>The mask a cross-attention layer passes to SDPA: the encoder padding mask (B, 1, 1, S), never causal.</summary>
    public AttentionMask CrossAttentionMask => new(EncoderKeyMask, false);

    /// <summary>T5's relative position bias, computed by the first layer and reused by the rest of the stack.</summary>
    public Tensor PositionBias =>
        positionBias ?? throw new InvalidOperationException("no layer computed the relative position bias; the first attention layer must declare RelativeBias");

    /// <summary>Keeps the first layer's position bias for the later layers and returns it.</summary>
    public Tensor SharePositionBias(Tensor bias)
    {
        positionBias?.Dispose();
        positionBias = bias.DetachFromDisposeScope();
        return positionBias;
    }

    /// <param name="hidden">(B, T, C) embeddings; fixes batch, length, device and dtype.</param>
    /// <param name="localRotary">The sliding-window layers' own rotary embedding, or null when they share <paramref name="rotary"/>.</param>
    public static ForwardContext Create(Tensor hidden, StackInputs inputs, RotaryEmbedding? rotary, RotaryEmbedding? localRotary = null)
    {
        long batch = hidden.shape[0], length = hidden.shape[1];
        var past = inputs.Cache?.PastLength ?? 0;
        var total = past + length;
        var device = hidden.device;
        Tensor positions;
        Tensor? keyMask = null, causalMask = null;
        using var scope = NewDisposeScope();
        if (inputs.AttentionMask is { } mask)
        {
            if (mask.dim() != 2 || mask.shape[0] != batch || mask.shape[1] != total)
                throw new PeftDslException(
                    $"attention_mask has shape [{string.Join(", ", mask.shape)}], expected [{batch}, {total}] to match the input" +
                    (past > 0 ? $" and its {past} cached tokens" : ""));
            var real = mask.to(ScalarType.Bool, device);
            keyMask = real.view(batch, 1, 1, total);
            positions = (real.to(ScalarType.Int64).cumsum(-1) - 1).clamp_min(0).narrow(1, past, length);
        }
        else
        {
            positions = arange(past, total, dtype: ScalarType.Int64, device: device).unsqueeze(0);
        }
        if (inputs.Packed is { } packed)
        {
            packed.Check(batch, length, past);
            positions = packed.Positions.to(device);
            causalMask = packed.Mask(device);
        }
        else if (keyMask is not null || (past > 0 && length > 1))
        {
            // Query i sits at absolute position past + i and sees keys up to it. It always sees itself, so a fully
            // padded row never makes softmax NaN; padding is never a key for real tokens, so their outputs hold.
            var causal = ones(length, total, dtype: ScalarType.Bool, device: device).tril(past);
            var self = eye(length, total, dtype: ScalarType.Bool, device: device).roll(past, 1);
            causalMask = (keyMask is null ? causal : (causal & keyMask) | self).view(-1, 1, length, total);
        }
        if (inputs.Routing?.RowSlots is { } slots && slots.shape[0] != batch)
            throw new PeftDslException($"adapter names are given for {slots.shape[0]} rows, but the batch has {batch}");
        var tables = rotary?.Tables(positions, hidden.dtype);
        var localTables = localRotary?.Tables(positions, hidden.dtype);
        Tensor? encoderKeyMask = inputs.EncoderMask?.to(ScalarType.Bool, device).view(batch, 1, 1, -1);
        var context = new ForwardContext(length, past, positions, keyMask, causalMask,
            tables is { } t ? (t.Cos.unsqueeze(1), t.SignedSin.unsqueeze(1)) : null,
            inputs.EncoderHidden, encoderKeyMask, inputs.Cache, inputs.Routing ?? AdapterRouting.None) {
                rotaryHeadDim = rotary?.HeadDim ?? 0, BaseDropout = inputs.BaseDropout, Checkpointing = inputs.Checkpoint,
                LocalRotary = localTables is { } l ? (l.Cos.unsqueeze(1), l.SignedSin.unsqueeze(1)) : null,
            };
        positions.MoveToOuterDisposeScope();
        keyMask?.MoveToOuterDisposeScope();
        causalMask?.MoveToOuterDisposeScope();
        encoderKeyMask?.MoveToOuterDisposeScope();
        foreach (var r in new[] { context.Rotary, context.LocalRotary })
        {
            r?.Cos.MoveToOuterDisposeScope();
            r?.SignedSin.MoveToOuterDisposeScope();
        }
        return context;
    }

    /// <summary>Frees what the context made itself (the shared position bias and the window mask); the other tensors
    /// belong to the stack's dispose scope, except in a <see cref="ForReplay"/> copy, which owns them all.</summary>
    public void Dispose()
    {
        positionBias?.Dispose();
        windowMask?.Dispose();
        if (!ownsTensors) return;
        foreach (var t in new[] { Positions, KeyMask, CausalMask, Rotary?.Cos, Rotary?.SignedSin, LocalRotary?.Cos, LocalRotary?.SignedSin,
                                  EncoderHidden, EncoderKeyMask, Routing.RowSlots })
            t?.Dispose();
    }
}

/// <summary>A boolean SDPA mask (true = may attend), or none with or without <c>is_causal</c>.</summary>
public readonly record struct AttentionMask(Tensor? Mask, bool IsCausal);
