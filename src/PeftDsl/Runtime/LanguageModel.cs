using PeftDsl.Checkpoints;
using PeftDsl.Errors;
using PeftDsl.Peft;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftDsl.Runtime;

/// <summary>
/// What every generated root shares, causal or encoder-decoder: vocabulary, checkpoint rules, loading and saving the
/// base weights, the adapter registry and the per-call routing. Subclasses add their forward signatures.
/// </summary>
public abstract class LanguageModel(string name) : nn.Module(name), Generation.IGenerativeModel
{
    private AdapterRegistry? adapters;

    /// <summary>Size of the output vocabulary.</summary>
    public abstract long VocabSize { get; }

    /// <summary>config.json's <c>model_type</c> this class reads.</summary>
    public abstract string ModelType { get; }

    /// <summary>How checkpoints of this model may differ from its parameter list.</summary>
    public abstract CheckpointRules CheckpointRules { get; }

    /// <summary>The adapters attached to this model: add, load, save, activate, merge, delete.</summary>
    public AdapterRegistry Adapters => adapters ??= new AdapterRegistry(this);

    public abstract Generation.DecodingSession BeginDecoding(Tensor prompts, Tensor mask, Generation.GenerationOptions options);

    /// <summary>Submodules are registered explicitly under their checkpoint names; TorchSharp's field-name
    /// registration would add a second name for each.</summary>
    protected override void RegisterComponents()
    {
    }

    /// <summary>The sorted <c>key [shape]</c> listing of this model's base weights in checkpoint layout.</summary>
    public string DescribeCheckpoint() => CheckpointLayout.Describe(this);

    /// <summary>Writes model.safetensors (base weights only) in Hugging Face layout; <c>FromPretrained</c> reads it back.</summary>
    public void SaveWeights(string path) => CheckpointWriter.SaveWeights(this, path);

    /// <summary>Loads base weights from a Hugging Face folder into this model, strictly.</summary>
    public void LoadCheckpoint(CheckpointFolder folder) => CheckpointLoader.Load(this, folder, CheckpointRules);

    /// <summary>The routing of one call: the active adapters, or one adapter per row of <paramref name="inputIds"/>.</summary>
    protected AdapterRouting Route(IReadOnlyList<string>? adapterNames, Tensor inputIds) =>
        Adapters.Route(adapterNames, inputIds.shape[0], inputIds.device);

    internal static void Require2D(Tensor t, string name)
    {
        if (t.dim() != 2)
            throw new PeftDslException($"{name} must be (batch, length), got shape [{string.Join(", ", t.shape)}]");
    }
}
