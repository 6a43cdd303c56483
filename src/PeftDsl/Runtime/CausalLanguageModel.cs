using PeftDsl.Checkpoints;
using PeftDsl.Errors;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftDsl.Runtime;

/// <summary>Logits (B, T, V) and, when labels were given, the mean loss. Dispose it to free both.</summary>
public sealed record CausalLMOutput(Tensor Logits, Tensor? Loss) : IDisposable
{
    public void Dispose()
    {
        Logits.Dispose();
        Loss?.Dispose();
    }
}

/// <summary>
/// What every generated <c>[CausalLM]</c> root shares: the loss, loading, and the checkpoint rules. The generated
/// part supplies the constructor and <c>forward(input_ids, attention_mask) → logits</c>.
/// </summary>
public abstract class CausalLanguageModel(string name) : nn.Module<Tensor, Tensor?, Tensor>(name), Generation.IGenerativeModel
{
    /// <summary>Size of the output vocabulary.</summary>
    public abstract long VocabSize { get; }

    public Generation.DecodingSession BeginDecoding(Tensor prompts, Tensor mask, Generation.GenerationOptions options) =>
        new Generation.CausalDecodingSession(this, prompts, mask, options.UseCache);

    /// <summary>config.json's <c>model_type</c> this class reads.</summary>
    public abstract string ModelType { get; }

    /// <summary>How checkpoints of this model may differ from its parameter list.</summary>
    public abstract CheckpointRules CheckpointRules { get; }

    /// <summary>Logits and, with <paramref name="labels"/>, the next-token loss.</summary>
    /// <param name="inputIds">(B, T) int64 token ids.</param>
    /// <param name="attentionMask">(B, T) with 1 for tokens and 0 for padding, or null.</param>
    /// <param name="labels">(B, T) int64 targets (usually the input ids) with -100 where no loss is taken.</param>
    public CausalLMOutput Forward(Tensor inputIds, Tensor? attentionMask = null, Tensor? labels = null)
    {
        Seq2SeqLanguageModel.Require2D(inputIds, "input_ids");
        if (labels is not null && !labels.shape.SequenceEqual(inputIds.shape))
            throw new PeftDslException($"labels have shape [{string.Join(", ", labels.shape)}], expected [{string.Join(", ", inputIds.shape)}]");
        using var scope = NewDisposeScope();
        var logits = forward(inputIds, attentionMask);
        var loss = labels is null ? null : Losses.CausalLM(logits, labels);
        return new CausalLMOutput(logits.MoveToOuterDisposeScope(), loss?.MoveToOuterDisposeScope());
    }

    /// <summary>Logits for <paramref name="inputIds"/> after the tokens already in <paramref name="cache"/>.</summary>
    /// <param name="attentionMask">(B, past + T) or null.</param>
    /// <returns>(B, T, V)</returns>
    public abstract Tensor Logits(Tensor inputIds, Tensor? attentionMask, KvCache? cache);

    public override Tensor forward(Tensor inputIds, Tensor? attentionMask) => Logits(inputIds, attentionMask, null);

    /// <summary>Submodules are registered explicitly under their checkpoint names; TorchSharp's field-name
    /// registration would add a second name for each.</summary>
    protected override void RegisterComponents()
    {
    }

    /// <summary>The sorted <c>key [shape]</c> listing of this model in checkpoint layout.</summary>
    public string DescribeCheckpoint() => CheckpointLayout.Describe(this);

    /// <summary>Writes model.safetensors in Hugging Face layout; <c>FromPretrained</c> reads it back.</summary>
    public void SaveWeights(string path) => CheckpointWriter.SaveWeights(this, path);

    /// <summary>Loads weights from a Hugging Face folder into this model, strictly.</summary>
    public void LoadCheckpoint(CheckpointFolder folder) => CheckpointLoader.Load(this, folder, CheckpointRules);
}
