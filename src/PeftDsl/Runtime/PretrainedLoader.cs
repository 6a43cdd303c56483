using PeftDsl.Checkpoints;
using PeftDsl.Errors;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftDsl.Runtime;

/// <summary>The loading path shared by every generated <c>FromPretrained</c>.</summary>
public static class PretrainedLoader
{
    /// <summary>Opens <paramref name="directory"/>, checks its <c>model_type</c>, builds the model uninitialised,
    /// converts it to the requested dtype and loads the weights strictly; it returns in eval mode. The model is
    /// disposed on any failure.</summary>
    /// <param name="modelTypes">config.json model_type values the class reads; empty accepts any.</param>
    public static T Load<T>(string directory, ModelLoadOptions? options, IReadOnlyList<string> modelTypes, Func<Config.ConfigJson, T> create)
        where T : nn.Module
    {
        options ??= ModelLoadOptions.Default;
        using var folder = CheckpointFolder.Open(directory);
        var actual = folder.Config.GetString("model_type");
        if (modelTypes.Count > 0 && actual is not null && !modelTypes.Contains(actual))
            throw new CheckpointException(
                $"{folder.Config.Source}: model_type is '{actual}', but {typeof(T).Name} reads '{string.Join("' or '", modelTypes)}' checkpoints");
        var model = create(folder.Config);
        try
        {
            model.to(options.DType);
            CheckpointLoader.Load(model, folder, RulesOf(model));
            if (options.Device is { } device) model.to(device);
            // As transformers' from_pretrained: a loaded model runs inference until train() is called, so an
            // adapter's dropout does not act by accident.
            model.eval();
            return model;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    private static CheckpointRules RulesOf(nn.Module model) => model is LanguageModel root ? root.CheckpointRules : CheckpointRules.Strict;
}
