using PeftDsl.Checkpoints;
using PeftDsl.Errors;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftDsl.Runtime;

/// <summary>
/// What every generated <c>[Seq2SeqLM]</c> root shares (T5, mT5): the loss, loading and checkpoint rules. The
/// generated part supplies <see cref="Encode"/> and <see cref="Decode"/>.
/// </summary>
public abstract class Seq2SeqLanguageModel(string name) : nn.Module(name), Generation.IGenerativeModel
{
    /// <summary>Size of the output vocabulary.</summary>
    public abstract long VocabSize { get; }

    /// <summary>The decoder's first token unless the options name one (config.json's decoder_start_token_id).</summary>
    public abstract long DecoderStartTokenId { get; }

    public Generation.DecodingSession BeginDecoding(Tensor prompts, Tensor mask, Generation.GenerationOptions options) =>
        new Generation.Seq2SeqDecodingSession(this, prompts, mask, options.DecoderStartTokenId ?? DecoderStartTokenId, options.UseCache);

    public abstract string ModelType { get; }

    public abstract CheckpointRules CheckpointRules { get; }

    /// <summary>(B, S) ids → (B, S, C) encoder states.</summary>
    public abstract Tensor Encode(Tensor inputIds, Tensor? attentionMask);

    /// <summary>Decoder logits (B, T, V) for <paramref name="decoderIds"/> after the tokens in <paramref name="cache"/>.</summary>
    public abstract Tensor Decode(Tensor decoderIds, Tensor encoderHidden, Tensor? encoderMask, Tensor? decoderMask = null, KvCache? cache = null);

    /// <summary>Logits and, with <paramref name="labels"/> (aligned with <paramref name="decoderIds"/>), the loss.</summary>
    public Seq2SeqOutput Forward(Tensor inputIds, Tensor? attentionMask, Tensor decoderIds, Tensor? labels = null)
    {
        Require2D(inputIds, "input_ids");
        Require2D(decoderIds, "decoder_input_ids");
        if (decoderIds.shape[0] != inputIds.shape[0])
            throw new PeftDslException($"decoder_input_ids has batch {decoderIds.shape[0]}, input_ids has {inputIds.shape[0]}");
        if (labels is not null && !labels.shape.SequenceEqual(decoderIds.shape))
            throw new PeftDslException($"labels have shape [{string.Join(", ", labels.shape)}], expected [{string.Join(", ", decoderIds.shape)}] like decoder_input_ids");
        using var scope = NewDisposeScope();
        var encoded = Encode(inputIds, attentionMask);
        var logits = Decode(decoderIds, encoded, attentionMask);
        var loss = labels is null ? null : Losses.Aligned(logits, labels);
        return new Seq2SeqOutput(logits.MoveToOuterDisposeScope(), loss?.MoveToOuterDisposeScope());
    }

    /// <summary>Submodules are registered explicitly under their checkpoint names; TorchSharp's field-name
    /// registration would add a second name for each.</summary>
    protected override void RegisterComponents()
    {
    }

    public string DescribeCheckpoint() => CheckpointLayout.Describe(this);

    public void SaveWeights(string path) => CheckpointWriter.SaveWeights(this, path);

    public void LoadCheckpoint(CheckpointFolder folder) => CheckpointLoader.Load(this, folder, CheckpointRules);

    internal static void Require2D(Tensor t, string name)
    {
        if (t.dim() != 2)
            throw new PeftDslException($"{name} must be (batch, length), got shape [{string.Join(", ", t.shape)}]");
    }
}

/// <summary>Decoder logits (B, T, V) and, when labels were given, the mean loss.</summary>
public sealed record Seq2SeqOutput(Tensor Logits, Tensor? Loss) : IDisposable
{
    public void Dispose()
    {
        Logits.Dispose();
        Loss?.Dispose();
    }
}
