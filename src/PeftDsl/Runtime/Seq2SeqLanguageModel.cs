using PeftDsl.Errors;
using PeftDsl.Modules;
using PeftDsl.Peft;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftDsl.Runtime;

/// <summary>
/// A generated <c>[Seq2SeqLM]</c> root (T5, mT5): the generated part supplies the two stacks and the head; this class
/// runs them, routes adapters and computes the loss.
/// </summary>
public abstract class Seq2SeqLanguageModel(string name) : LanguageModel(name)
{
    /// <summary>The decoder's first token unless the options name one (config.json's decoder_start_token_id).</summary>
    public abstract long DecoderStartTokenId { get; }

    /// <summary>Starts decoding: the right-padded (B, S) prompts are encoded once, then the decoder runs from
    /// <c>options.DecoderStartTokenId</c> (else <see cref="DecoderStartTokenId"/>) one token per step, cached unless
    /// <c>options.UseCache</c> is false.</summary>
    public override Generation.DecodingSession BeginDecoding(Tensor prompts, Tensor mask, Generation.GenerationOptions options) =>
        new Generation.Seq2SeqDecodingSession(this, prompts, mask, options.DecoderStartTokenId ?? DecoderStartTokenId, options.UseCache, options.AdapterNames);

    /// <summary>The LM head (tied to the shared embedding or untied).</summary>
    protected abstract LmHead Head { get; }

    /// <summary>(B, S) ids → (B, S', C) encoder states.</summary>
    protected abstract Tensor EncoderHidden(Tensor inputIds, StackInputs inputs);

    /// <summary>(B, T) decoder ids → (B, T, C) decoder states.</summary>
    protected abstract Tensor DecoderHidden(Tensor decoderIds, StackInputs inputs);

    /// <summary>(B, S) ids → (B, S, C) encoder states.</summary>
    /// <param name="routing">The call's adapter routing; null uses the active adapters.</param>
    /// <returns>(B, P + S, C) with a prompt task routed: its virtual tokens go before the encoder input, as peft
    /// puts them (the first P of its 2P saved rows), or into the input's slots (NeMo's markers: negative ids). A
    /// prefix-tuning task leaves the encoder alone (see <see cref="Decode"/>).</returns>
    public Tensor Encode(Tensor inputIds, Tensor? attentionMask, AdapterRouting? routing = null)
    {
        using var scope = NewDisposeScope();
        routing ??= Route(null, inputIds);
        var prompts = RoutesPrefix(routing) ? null : VirtualTokens(routing, inputIds, rows: true);
        var mask = prompts is null ? attentionMask : prompts.ExtendMask(attentionMask, inputIds.shape[0], inputIds.shape[1], inputIds.device);
        return EncoderHidden(prompts?.TokenIds ?? inputIds, new StackInputs(mask, Routing: routing, Prompts: prompts, BaseDropout: BaseDropout, Checkpoint: GradientCheckpointing)).MoveToOuterDisposeScope();
    }

    /// <summary>The mask over <see cref="Encode"/>'s output for cross-attention: the caller's (B, S) mask over real
    /// tokens, with the virtual positions in front when a routed prompt task put them there; null when nothing is masked.</summary>
    public Tensor? EncoderMask(Tensor? attentionMask, Tensor inputIds, AdapterRouting? routing = null)
    {
        using var scope = NewDisposeScope();
        routing ??= Route(null, inputIds);
        var slotted = routing.PromptRows is not null && inputIds.NumberOfElements > 0 && inputIds.min().item<long>() < 0;
        var prompts = slotted || RoutesPrefix(routing) ? null : VirtualTokens(routing, inputIds, rows: false);
        var mask = prompts is null ? attentionMask : prompts.ExtendMask(attentionMask, inputIds.shape[0], inputIds.shape[1], inputIds.device);
        // The caller's own mask goes back untouched (it belongs to the caller's scope).
        return ReferenceEquals(mask, attentionMask) ? attentionMask : mask?.MoveToOuterDisposeScope();
    }

    /// <summary>Decoder logits (B, T, V) for <paramref name="decoderIds"/> after the tokens in <paramref name="cache"/>.
    /// A routed prefix-tuning task goes where peft 0.21 puts it on an encoder-decoder: past keys and values of the
    /// decoder's self-attention layers, P positions before the first decoder token (T5's relative positions count
    /// them); the encoder and cross-attention do not see it.</summary>
    /// <param name="decoderMask">(B, past + T) over real decoder tokens, or null.</param>
    /// <param name="lastPositionOnly">Project only the last position (decoding).</param>
    public Tensor Decode(Tensor decoderIds, Tensor encoderHidden, Tensor? encoderMask, Tensor? decoderMask = null,
        KvCache? cache = null, AdapterRouting? routing = null, bool lastPositionOnly = false)
    {
        using var scope = NewDisposeScope();
        routing ??= Route(null, decoderIds);
        if (encoderMask is not null && encoderMask.shape[^1] != encoderHidden.shape[1])
            throw new PeftDslException($"the encoder mask covers {encoderMask.shape[^1]} positions, the encoder output has {encoderHidden.shape[1]}" +
                                       " (with virtual tokens in front, pass EncoderMask(…), which covers them)");
        var first = cache is null || cache.PastLength == 0;
        KvCache? temporary = null;
        if (RoutesPrefix(routing) && (first || cache!.VirtualLength > 0))
            (cache, temporary, decoderMask) = EnterVirtual(VirtualTokens(routing, decoderIds, rows: first)!, decoderMask, cache, decoderIds);
        try
        {
            var inputs = new StackInputs(decoderMask, encoderHidden, encoderMask, cache, routing, BaseDropout: BaseDropout, Checkpoint: GradientCheckpointing);
            var h = DecoderHidden(decoderIds, inputs);  // (B, T, C)
            if (first && cache is not null && cache.VirtualLength > 0) cache.CheckPrefixUsed();
            if (lastPositionOnly) h = h.narrow(1, -1, 1);
            return Head.forward(h).MoveToOuterDisposeScope();
        }
        finally
        {
            temporary?.Dispose();
        }
    }

    /// <summary>Logits and, with <paramref name="labels"/> (aligned with <paramref name="decoderIds"/>), the loss.</summary>
    /// <param name="adapterNames">One adapter name per row (<c>__base__</c> for none); null uses the active adapters.</param>
    public Seq2SeqOutput Forward(Tensor inputIds, Tensor? attentionMask, Tensor decoderIds, Tensor? labels = null,
        IReadOnlyList<string>? adapterNames = null)
    {
        Require2D(inputIds, "input_ids");
        Require2D(decoderIds, "decoder_input_ids");
        if (decoderIds.shape[0] != inputIds.shape[0])
            throw new PeftDslException($"decoder_input_ids has batch {decoderIds.shape[0]}, input_ids has {inputIds.shape[0]}");
        if (labels is not null && !labels.shape.SequenceEqual(decoderIds.shape))
            throw new PeftDslException($"labels have shape [{string.Join(", ", labels.shape)}], expected [{string.Join(", ", decoderIds.shape)}] like decoder_input_ids");
        using var scope = NewDisposeScope();
        var routing = Route(adapterNames, inputIds);
        var encoded = Encode(inputIds, attentionMask, routing);
        var logits = Decode(decoderIds, encoded, EncoderMask(attentionMask, inputIds, routing), routing: routing);
        var loss = labels is null ? null : Losses.Aligned(logits, labels);
        return new Seq2SeqOutput(logits.MoveToOuterDisposeScope(), loss?.MoveToOuterDisposeScope());
    }
}

/// <summary>Decoder logits (B, T, V) and, when labels were given, the mean loss.</summary>
public sealed record Seq2SeqOutput(Tensor Logits, Tensor? Loss) : IDisposable
{
    /// <summary>Frees the logits and the loss.</summary>
    public void Dispose()
    {
        Logits.Dispose();
        Loss?.Dispose();
    }
}
