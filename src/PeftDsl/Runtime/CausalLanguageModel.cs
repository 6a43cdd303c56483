using PeftDsl.Errors;
using PeftDsl.Modules;
using PeftDsl.Peft;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftDsl.Runtime;

/// <summary>Logits (B, T, V) and, when labels were given, the mean loss. Dispose it to free both.</summary>
public sealed record CausalLMOutput(Tensor Logits, Tensor? Loss) : IDisposable
{
    /// <summary>Frees the logits and the loss.</summary>
    public void Dispose()
    {
        Logits.Dispose();
        Loss?.Dispose();
    }
}

/// <summary>
/// A generated <c>[CausalLM]</c> root: the generated part supplies the body (<see cref="Hidden"/>) and the head;
/// this class runs them, routes adapters and computes the loss.
/// </summary>
public abstract class CausalLanguageModel(string name) : LanguageModel(name)
{
    /// <summary>Starts decoding left-padded (B, T) prompts: they run once, then one token per step, through a KV cache
    /// unless <c>options.UseCache</c> is false; <c>options.AdapterNames</c> routes rows to adapters.</summary>
    public override Generation.DecodingSession BeginDecoding(Tensor prompts, Tensor mask, Generation.GenerationOptions options) =>
        new Generation.CausalDecodingSession(this, prompts, mask, options.UseCache, options.AdapterNames);

    /// <summary>The LM head (tied or untied).</summary>
    protected abstract LmHead Head { get; }

    /// <summary>The LM head, for the PEFT methods that train it (<c>modules_to_save</c>).</summary>
    internal LmHead OutputHead => Head;

    /// <summary>(B, T) ids → (B, T', C) final hidden states of the body.</summary>
    protected abstract Tensor Hidden(Tensor inputIds, StackInputs inputs);

    /// <summary>Logits and, with <paramref name="labels"/>, the next-token loss.</summary>
    /// <param name="inputIds">(B, T) int64 token ids.</param>
    /// <param name="attentionMask">(B, T) with 1 for tokens and 0 for padding, or null.</param>
    /// <param name="labels">(B, T) int64 targets (usually the input ids) with -100 where no loss is taken.</param>
    /// <param name="adapterNames">One adapter name per row (<c>__base__</c> for none), as peft's
    /// <c>adapter_names</c>; null uses the active adapters for every row. Works in training too.</param>
    /// <param name="packed">Several examples per row (<see cref="PackedSequences"/>); their labels must already take no
    /// loss at each example's first token. Not with prompt learning.</param>
    public CausalLMOutput Forward(Tensor inputIds, Tensor? attentionMask = null, Tensor? labels = null,
        IReadOnlyList<string>? adapterNames = null, PackedSequences? packed = null)
    {
        Require2D(inputIds, "input_ids");
        if (labels is not null && !labels.shape.SequenceEqual(inputIds.shape))
            throw new PeftDslException($"labels have shape [{string.Join(", ", labels.shape)}], expected [{string.Join(", ", inputIds.shape)}]");
        using var scope = NewDisposeScope();
        var logits = Logits(inputIds, attentionMask, null, Route(adapterNames, inputIds), packed: packed);
        // Virtual-prompt slots (negative ids) are not tokens to predict.
        if (labels is not null) labels = labels.masked_fill(inputIds.lt(0), Losses.IgnoreIndex);
        // Virtual tokens add positions at the front of the logits; they take no loss (peft's -100 labels).
        var virtualPositions = logits.shape[1] - inputIds.shape[1];
        if (labels is not null && virtualPositions > 0)
            labels = cat([full(labels.shape[0], virtualPositions, Losses.IgnoreIndex, dtype: labels.dtype, device: labels.device), labels], 1);
        var loss = labels is null ? null : Losses.CausalLM(logits, labels);
        return new CausalLMOutput(logits.MoveToOuterDisposeScope(), loss?.MoveToOuterDisposeScope());
    }

    /// <summary>Logits for <paramref name="inputIds"/> after the tokens already in <paramref name="cache"/>. With a
    /// prompt task routed, the first pass also runs its virtual tokens (prompt rows in front of the logits, or a
    /// prefix in the cache); later passes find them in the cache.</summary>
    /// <param name="attentionMask">(B, past + T) over real tokens only, or null.</param>
    /// <param name="routing">The call's adapter routing; null uses the active adapters.</param>
    /// <param name="lastPositionOnly">Project only the last position (decoding): the head is the largest matmul.</param>
    /// <param name="packed">Several examples per row; not with a cache or virtual tokens.</param>
    /// <returns>(B, T, V), or (B, 1, V) with <paramref name="lastPositionOnly"/>.</returns>
    public Tensor Logits(Tensor inputIds, Tensor? attentionMask = null, KvCache? cache = null, AdapterRouting? routing = null,
        bool lastPositionOnly = false, PackedSequences? packed = null) =>
        Pass(inputIds, attentionMask, cache, routing, lastPositionOnly, packed, throughHead: true);

    /// <summary>
    /// The mean next-token loss, as <see cref="Forward"/> computes it, with the LM head and the cross-entropy taken in
    /// chunks of positions (<see cref="ChunkedLoss"/>): at most one chunk's logits exist at a time, forward or backward,
    /// where the whole (B, T, V) tensor would otherwise dominate memory (4 × 2048 × 262,144 fp32 logits are 8.6 GB).
    /// The loss and the gradients are the plain path's. Training and evaluation use it.
    /// </summary>
    /// <param name="chunk">Positions per chunk; null picks about 256 MiB of fp32 logits per chunk.</param>
    public Tensor Loss(Tensor inputIds, Tensor? attentionMask, Tensor labels, IReadOnlyList<string>? adapterNames = null,
        PackedSequences? packed = null, long? chunk = null)
    {
        Require2D(inputIds, "input_ids");
        if (!labels.shape.SequenceEqual(inputIds.shape))
            throw new PeftDslException($"labels have shape [{string.Join(", ", labels.shape)}], expected [{string.Join(", ", inputIds.shape)}]");
        if (chunk is <= 0) throw new PeftDslException($"the loss chunk must be a positive number of positions, got {chunk}");
        using var scope = NewDisposeScope();
        var hidden = Pass(inputIds, attentionMask, null, Route(adapterNames, inputIds), false, packed, throughHead: false);
        labels = labels.masked_fill(inputIds.lt(0), Losses.IgnoreIndex);
        var virtualPositions = hidden.shape[1] - inputIds.shape[1];
        if (virtualPositions > 0)
            labels = cat([full(labels.shape[0], virtualPositions, Losses.IgnoreIndex, dtype: labels.dtype, device: labels.device), labels], 1);
        return ChunkedLoss.Compute(Head, hidden, labels, chunk ?? ChunkedLoss.DefaultChunk(VocabSize)).MoveToOuterDisposeScope();
    }

    /// <summary>The stack's output for the pass, through the head when <paramref name="throughHead"/>.</summary>
    private Tensor Pass(Tensor inputIds, Tensor? attentionMask, KvCache? cache, AdapterRouting? routing, bool lastPositionOnly,
        PackedSequences? packed, bool throughHead)
    {
        Tensor Out(Tensor h) => throughHead ? Head.forward(lastPositionOnly ? h.narrow(1, -1, 1) : h) : h;
        using var scope = NewDisposeScope();
        routing ??= Route(null, inputIds);
        var first = cache is null || cache.PastLength == 0;
        // After the first pass, only virtual positions put in front concern later steps (slots are ordinary positions).
        var prompts = first || cache!.VirtualLength > 0 ? VirtualTokens(routing, inputIds, rows: first) : null;
        if (prompts is not null && packed is not null)
            throw new PeftDslException("packed rows cannot take virtual tokens: a prompt would be prepended to the row, not to each example; train prompt learning without --packing");
        if (prompts is null)
        {
            var plain = Hidden(inputIds, new StackInputs(attentionMask, Cache: cache, Routing: routing, BaseDropout: BaseDropout, Packed: packed, Checkpoint: GradientCheckpointing));  // (B, T, C)
            return Out(plain).MoveToOuterDisposeScope();
        }
        (cache, var temporary, var mask) = EnterVirtual(prompts, attentionMask, cache, inputIds);
        try
        {
            var h = Hidden(prompts.TokenIds ?? inputIds, new StackInputs(mask, Cache: cache, Routing: routing, Prompts: prompts, BaseDropout: BaseDropout, Checkpoint: GradientCheckpointing));  // (B, P + T, C) on a prompt's first pass
            if (first) cache?.CheckPrefixUsed();
            // The prompt rows went into the cache with this pass's tokens; the caller advances by its own tokens.
            if (prompts.Embeddings is not null && cache is not null && temporary is null) cache.AddVirtual(prompts.Count);
            return Out(h).MoveToOuterDisposeScope();
        }
        finally
        {
            temporary?.Dispose();
        }
    }
}
