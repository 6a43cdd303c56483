using System.Text.Json;
using PeftDsl.Checkpoints;
using PeftDsl.Checkpoints.Safetensors;
using PeftDsl.Errors;
using PeftDsl.Peft;
using PeftDsl.Runtime;
using static TorchSharp.torch;

namespace PeftDsl.Training;

/// <summary>Where a run is: the step, the epoch and the batch within it, and the best evaluation so far. With the
/// settings it must be resumed with, so a resume that would compute something else is refused.</summary>
public sealed record TrainerState(int Step, int Epoch, int BatchInEpoch, double? BestMetric, int EvalsWithoutImprovement,
    int Seed, int BatchSize, int Accumulation, int Examples, int TotalSteps)
{
    /// <summary>Every other setting the run's math depends on, option → value (learning rate, schedule, LoRA, data
    /// format, …); a resume with any of them changed is refused.</summary>
    public IReadOnlyDictionary<string, string>? Settings { get; init; }
}

/// <summary>
/// A training checkpoint folder, written atomically: <c>adapter/</c> (LoRA, peft's format), <c>prompts/{task}/</c> (prompt tasks with their encoders), <c>optimizer.safetensors</c>
/// (AdamW's moments and step count) and <c>trainer_state.json</c>. A kill during a save leaves the previous one whole.
/// </summary>
public static class TrainingCheckpoint
{
    /// <summary>LoRA adapters in peft's layout: <c>default</c> at the top of <c>adapter/</c>, any other in a subfolder.</summary>
    public const string AdapterFolder = "adapter";

    /// <summary>Prompt tasks, one subfolder each, with their encoders (peft's adapter file keeps only the output).</summary>
    public const string PromptsFolder = "prompts";

    /// <summary>IA3 adapters, one subfolder each, in peft's format.</summary>
    public const string Ia3Folder = "ia3";

    /// <summary>Bottleneck adapters, one subfolder each.</summary>
    public const string BottleneckFolder = "bottleneck";
    private const string OptimizerFile = "optimizer.safetensors";
    private const string StateFile = "trainer_state.json";
    private static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    /// <summary>Writes a checkpoint into <paramref name="directory"/>, replacing it atomically: every adapter and prompt
    /// task, AdamW's moments and step count, and <paramref name="state"/>.</summary>
    public static void Save(string directory, LanguageModel model, FlatAdamW optimizer, TrainerState state)
    {
        AtomicFolder.Write(directory, staging =>
        {
            var adapter = Path.Combine(staging, AdapterFolder);
            Directory.CreateDirectory(adapter);
            model.Adapters.WriteInto(adapter);
            foreach (var task in model.Prompts.Names) model.Prompts.WriteState(Path.Combine(staging, PromptsFolder, task), task);
            foreach (var name in model.Ia3.Names) model.Ia3.WriteFiles(Path.Combine(staging, Ia3Folder, name), name);
            foreach (var name in model.Bottleneck.Names) model.Bottleneck.WriteFiles(Path.Combine(staging, BottleneckFolder, name), name);
            using var steps = tensor(new[] { optimizer.Steps });
            SafetensorsWriter.Save(Path.Combine(staging, OptimizerFile), new Dictionary<string, Tensor>
            {
                ["exp_avg"] = optimizer.ExpAvg, ["exp_avg_sq"] = optimizer.ExpAvgSq, ["step"] = steps,
            });
            File.WriteAllText(Path.Combine(staging, StateFile), JsonSerializer.Serialize(state, Json));
        }, keepOthers: false);
    }

    /// <summary>True when <paramref name="directory"/> holds a training checkpoint (a <c>trainer_state.json</c>).</summary>
    public static bool Exists(string directory) => File.Exists(Path.Combine(directory, StateFile));

    /// <summary>Reads the checkpoint's <c>trainer_state.json</c>; throws when it is missing or not valid.</summary>
    public static TrainerState ReadState(string directory)
    {
        var path = Path.Combine(directory, StateFile);
        if (!File.Exists(path)) throw new PeftDslException($"{directory}: no {StateFile}; not a training checkpoint");
        try
        {
            return JsonSerializer.Deserialize<TrainerState>(File.ReadAllText(path), Json)
                   ?? throw new PeftDslException($"{path}: empty");
        }
        catch (JsonException e)
        {
            throw new PeftDslException($"{path}: not a valid trainer state ({JsonErrors.Describe(e)})", e);
        }
    }

    /// <summary>Restores AdamW's moments and step count; the shapes must match this run's trainable tensors.</summary>
    public static void LoadOptimizer(string directory, FlatAdamW optimizer)
    {
        var path = Path.Combine(directory, OptimizerFile);
        if (!File.Exists(path)) throw new PeftDslException($"{directory}: no {OptimizerFile}");
        using var reader = SafetensorsReader.Open(path);
        using var scope = NewDisposeScope();
        var expAvg = reader.ReadFinite("exp_avg");
        if (!expAvg.shape.SequenceEqual(optimizer.ExpAvg.shape))
            throw new PeftDslException($"{path}: the optimizer holds {expAvg.shape[0]} values, this run trains {optimizer.ExpAvg.shape[0]}");
        optimizer.Load(expAvg.to(optimizer.ExpAvg.device), reader.ReadFinite("exp_avg_sq").to(optimizer.ExpAvg.device), reader.Read("step").item<long>());
    }
}
