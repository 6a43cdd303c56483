using PeftDsl.Checkpoints;
using PeftDsl.Errors;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftDsl.Runtime;

/// <summary>The loading path shared by every generated <c>FromPretrained</c>.</summary>
public static class PretrainedLoader
{
    /// <summary>Opens <paramref name="directory"/>, checks its <c>model_type</c>, builds the model uninitialised,
    /// converts it to the requested dtype and loads the weights strictly. The model is disposed on any failure.</summary>
    public static T Load<T>(string directory, ModelLoadOptions? options, string modelType, Func<Config.ConfigJson, T> create)
        where T : nn.Module
    {
        options ??= ModelLoadOptions.Default;
        using var folder = CheckpointFolder.Open(directory);
        var actual = folder.Config.GetString("model_type");
        if (modelType.Length > 0 && actual is not null && actual != modelType)
            throw new CheckpointException(
                $"{folder.Config.Source}: model_type is '{actual}', but {typeof(T).Name} reads '{modelType}' checkpoints");
        var model = create(folder.Config);
        try
        {
            model.to(options.DType);
            CheckpointLoader.Load(model, folder, RulesOf(model));
            if (options.Device is { } device) model.to(device);
            return model;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    private static CheckpointRules RulesOf(nn.Module model) => model switch
    {
        CausalLanguageModel causal => causal.CheckpointRules,
        Seq2SeqLanguageModel seq2seq => seq2seq.CheckpointRules,
        _ => CheckpointRules.Strict,
    };
}
