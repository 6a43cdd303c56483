using PeftDsl.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftDsl.Generation;

/// <summary>A model that can continue a batch of prompts one token at a time.</summary>
public interface IGenerativeModel
{
    /// <summary>V, the size of the logits' last dimension; prompt and pad ids must be below it.</summary>
    long VocabSize { get; }

    /// <summary>Prompt ids are padded the way the model kind expects; <paramref name="prompts"/> is (B, T) with its mask.</summary>
    DecodingSession BeginDecoding(Tensor prompts, Tensor mask, GenerationOptions options);

    /// <summary>Switches the model to inference mode (TorchSharp's <c>Module.eval()</c>) before decoding.</summary>
    void eval();
}

/// <summary>
/// The state of one batch being decoded: <see cref="Next"/> returns the logits (B, V) of the next position,
/// first after the prompts, then after each appended column of tokens. State tensors live outside every dispose
/// scope and are freed on Dispose.
/// </summary>
public abstract class DecodingSession : IDisposable
{
    private readonly List<Tensor> owned = [];

    /// <param name="appended">(B) tokens chosen at the previous step; null on the first call.</param>
    public abstract Tensor Next(Tensor? appended);

    /// <summary>The session's routing, made once: the same rows use the same adapters at every step.</summary>
    protected Peft.AdapterRouting Route(Runtime.LanguageModel model, IReadOnlyList<string>? adapterNames, Tensor prompts)
    {
        var routing = model.Route(adapterNames, prompts);   // LoRA adapters and prompt tasks alike
        if (routing.RowSlots is { } slots) Keep(slots);
        return routing;
    }

    /// <summary>Takes a tensor out of the dispose scopes and frees <paramref name="previous"/>.</summary>
    protected Tensor Keep(Tensor value, Tensor? previous = null)
    {
        if (previous is not null)
        {
            owned.Remove(previous);
            previous.Dispose();
        }
        owned.Add(value.DetachFromDisposeScope());
        return value;
    }

    /// <summary>Frees every state tensor the session kept (routing slots, step state); overrides free their own state,
    /// such as the KV cache, and then call it.</summary>
    public virtual void Dispose()
    {
        foreach (var t in owned) t.Dispose();
        owned.Clear();
    }
}

/// <summary>Decoder-only: the prompts (left-padded) run once, then one token per step through the cache.</summary>
internal sealed class CausalDecodingSession : DecodingSession
{
    private readonly CausalLanguageModel model;
    private KvCache? cache;
    private Tensor ids;
    private Tensor mask;
    private bool started;

    private readonly Peft.AdapterRouting routing;

    public CausalDecodingSession(CausalLanguageModel model, Tensor prompts, Tensor mask, bool useCache, IReadOnlyList<string>? adapterNames)
    {
        this.model = model;
        cache = useCache ? new KvCache() : null;
        ids = Keep(prompts.alias());
        this.mask = Keep(mask.alias());
        routing = Route(model, adapterNames, prompts);
    }

    public override Tensor Next(Tensor? appended)
    {
        using var scope = NewDisposeScope();
        Tensor input;
        if (!started)
        {
            started = true;
            input = ids;
        }
        else
        {
            var column = appended!.view(-1, 1);
            mask = Keep(cat([mask, ones_like(column)], 1), mask);
            ids = Keep(cat([ids, column], 1), ids);
            input = cache is null ? ids : column;
            // longrope switches to its long factors once a pass reaches past the original context; transformers'
            // Phi-3 generation then drops the cache (keys rotated with the short factors) and recomputes it all.
            if (cache is not null && model.LongRopeFrom is { } switchAt && cache.PastLength == switchAt)
            {
                cache.Dispose();
                cache = new KvCache();
                input = ids;
            }
        }
        // Only the last position's logits are sampled, so only it goes through the head.
        var logits = model.Logits(input, mask, cache, routing, lastPositionOnly: true);    // (B, 1, V)
        cache?.Advance(input.shape[1]);
        return logits.select(1, -1).MoveToOuterDisposeScope();
    }

    public override void Dispose()
    {
        cache?.Dispose();
        base.Dispose();
    }
}

/// <summary>Encoder-decoder: the encoder runs once; the decoder starts from its start token and, with a cache,
/// computes each layer's cross-attention keys and values once.</summary>
internal sealed class Seq2SeqDecodingSession : DecodingSession
{
    private readonly Seq2SeqLanguageModel model;
    private readonly KvCache? cache;
    private readonly Tensor encoded;
    private readonly Tensor encoderMask;
    private Tensor decoderIds;
    private bool started;

    private readonly Peft.AdapterRouting routing;

    public Seq2SeqDecodingSession(Seq2SeqLanguageModel model, Tensor prompts, Tensor mask, long startToken, bool useCache, IReadOnlyList<string>? adapterNames)
    {
        this.model = model;
        cache = useCache ? new KvCache() : null;
        routing = Route(model, adapterNames, prompts);
        var covering = model.EncoderMask(mask, prompts, routing);   // covers any virtual tokens
        encoderMask = Keep(covering is null || ReferenceEquals(covering, mask) ? mask.alias() : covering);
        encoded = Keep(model.Encode(prompts, mask, routing));                       // (B, S, C)
        decoderIds = Keep(full(prompts.shape[0], 1, startToken, dtype: ScalarType.Int64, device: prompts.device));
    }

    public override Tensor Next(Tensor? appended)
    {
        using var scope = NewDisposeScope();
        Tensor input;
        if (!started)
        {
            started = true;
            input = decoderIds;
        }
        else
        {
            var column = appended!.view(-1, 1);
            if (cache is null) decoderIds = Keep(cat([decoderIds, column], 1), decoderIds);
            input = cache is null ? decoderIds : column;
        }
        var logits = model.Decode(input, encoded, encoderMask, null, cache, routing, lastPositionOnly: true);   // (B, 1, V)
        cache?.Advance(input.shape[1]);
        return logits.select(1, -1).MoveToOuterDisposeScope();
    }

    public override void Dispose()
    {
        cache?.Dispose();
        base.Dispose();
    }
}
