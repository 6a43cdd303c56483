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
    /// <param name="bind">config.json → the config record.</param>
    /// <param name="describe">The checkpoint keys and shapes the config implies, listed without building anything.</param>
    public static T Load<T, TConfig>(string directory, ModelLoadOptions? options, IReadOnlyList<string> modelTypes,
        Func<Config.ConfigJson, TConfig> bind, Func<TConfig, IReadOnlyList<CheckpointKey>> describe, Func<TConfig, T> create)
        where T : nn.Module
    {
        options ??= ModelLoadOptions.Default;
        using var folder = CheckpointFolder.Open(directory);
        var actual = folder.Config.GetString("model_type");
        if (modelTypes.Count > 0 && actual is not null && !modelTypes.Contains(actual))
            throw new CheckpointException(
                $"{folder.Config.Source}: model_type is '{actual}', but {typeof(T).Name} reads '{string.Join("' or '", modelTypes)}' checkpoints");
        var config = bind(folder.Config);
        T model;
        try
        {
            CheckShapesBeforeBuilding(folder, () => describe(config));
            model = create(config);
        }
        catch (Errors.ConfigException e) when (!e.Message.StartsWith(folder.Config.Source, StringComparison.Ordinal))
        {
            // The declaration's checks name the module and the key; the user also needs the file.
            throw new Errors.ConfigException($"{folder.Config.Source}: {e.Message}", e);
        }
        try
        {
            // Built unwritten, so counting costs nothing; refused here rather than killed partway through the load.
            MemoryCheck.RequireFits(Quantization.FourBitModel.EstimateBytes(model, options.DType, options.Quantize), directory, options.Device);
            if (options.Quantize is { } fourBit)
            {
                // The projections are converted and placed empty, then each is read, quantized on the device and
                // freed, so the full-precision model never exists at once.
                var shapes = Quantization.FourBitModel.EmptyProjections(model);
                model.to(options.DType);
                if (options.Device is { } target) model.to(target);
                Quantization.FourBitModel.Reallocate(shapes, options.DType, options.Device ?? CPU);
                var byWeight = shapes.ToDictionary(s => s.Linear.weight.Handle, s => s.Linear);
                CheckpointLoader.Load(model, folder, RulesOf(model), t =>
                {
                    if (!byWeight.TryGetValue(t.Target.Handle, out var linear)) return;
                    linear.QuantizeTo4Bit(fourBit.Type, fourBit.DoubleQuant);
                    NativeHeap.Trim();   // else glibc keeps every freed weight resident until the end (NativeHeap)
                });
            }
            else
            {
                model.to(options.DType);
                CheckpointLoader.Load(model, folder, RulesOf(model));
                if (options.Device is { } device) model.to(device);
            }
            if (model is LanguageModel root && actual is not null) root.ConfigModelType = actual;
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

    /// <summary>
    /// A config that lies about sizes (<c>vocab_size: 2000000000</c>, <c>n_layer: 100000000</c>) must not reach the
    /// allocator: the keys it implies are listed first (at most one block per stored tensor), and a key the checkpoint
    /// holds (with or without the body's prefix) in a smaller shape than the config implies is refused here, listing
    /// every such key. Other disagreements cost no more memory than the weights themselves and are left to the strict
    /// load, which lists missing, unexpected and mis-shaped keys together.
    /// </summary>
    private static void CheckShapesBeforeBuilding(CheckpointFolder folder, Func<IReadOnlyList<CheckpointKey>> describe)
    {
        var stored = folder.Keys.ToHashSet(StringComparer.Ordinal);
        IReadOnlyList<CheckpointKey> keys;
        using (DslChecks.LimitBlocks(stored.Count, folder.Config.Source)) keys = describe();
        var wrong = new List<string>();
        var grows = false;
        foreach (var key in keys)
        {
            var fileKey = stored.Contains(key.Key) ? key.Key
                : key.Key.IndexOf('.') is var dot and > 0 && stored.Contains(key.Key[(dot + 1)..]) ? key.Key[(dot + 1)..] : null;
            if (fileKey is null) continue;
            var entry = folder.Entry(fileKey);
            if (entry.Shape.SequenceEqual(key.Shape)) continue;
            wrong.Add($"{fileKey}: checkpoint {entry.ShapeText}, model expects [{string.Join(", ", key.Shape)}]");
            grows |= Elements(key.Shape) > entry.ElementCount;
        }
        if (grows) throw CheckpointLoader.Mismatch(folder.Directory, [], [], wrong, "; config.json implies larger tensors than it stores (checked before building the model)");
    }

    private static double Elements(long[] shape) => shape.Aggregate(1.0, (n, d) => n * d);

    private static CheckpointRules RulesOf(nn.Module model) => model is LanguageModel root ? root.CheckpointRules : CheckpointRules.Strict;
}
