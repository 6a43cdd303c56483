using PeftDsl.Checkpoints;
using PeftDsl.Checkpoints.Safetensors;
using PeftDsl.Dsl;
using PeftDsl.Errors;
using PeftDsl.Modules;
using PeftDsl.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftDsl.Peft.Lora;

/// <summary>
/// peft's LoRA adapter folder: <c>adapter_config.json</c> and <c>adapter_model.safetensors</c> whose keys are the
/// in-memory names with the <c>base_model.model.</c> wrapper and without the adapter name
/// (<c>base_model.model.transformer.h.0.attn.c_attn.lora_A.weight</c>; DoRA's magnitude is
/// <c>….lora_magnitude_vector</c>, no <c>.weight</c>). Loading is strict: every tensor must have its module and
/// shape, and every module its tensor.
/// </summary>
public static class LoraAdapterFile
{
    /// <summary>The config file's name, <c>adapter_config.json</c>.</summary>
    public const string ConfigFile = AdapterFolder.ConfigFile;
    /// <summary>The weights file's name, <c>adapter_model.safetensors</c>.</summary>
    public const string WeightsFile = AdapterFolder.WeightsFile;
    private const string Prefix = "base_model.model.";

    /// <summary>The key suffixes of the tensors PeftDsl reads from a LoRA file.</summary>
    private static readonly string[] Suffixes = [".lora_A.weight", ".lora_B.weight", ".lora_magnitude_vector", TokenSuffix, ".weight"];

    /// <summary>peft's key for trainable tokens' rows, after the embedding's path (the adapter name removed).</summary>
    private const string TokenSuffix = ".token_adapter.trainable_tokens_delta";

    /// <summary>The adapters of a folder as peft saves them: <c>default</c> at the top, others in subfolders.</summary>
    public static IReadOnlyList<(string Name, string Folder)> AdaptersIn(string directory)
    {
        if (!Directory.Exists(directory)) throw new PeftDslException($"{directory}: adapter folder not found");
        var result = new List<(string, string)>();
        if (File.Exists(Path.Combine(directory, ConfigFile))) result.Add(("default", directory));
        foreach (var sub in Directory.EnumerateDirectories(directory).Order(StringComparer.Ordinal))
            if (File.Exists(Path.Combine(sub, ConfigFile)) && !Path.GetFileName(sub).StartsWith('.'))
                result.Add((Path.GetFileName(sub), sub));
        if (result.Count == 0)
            throw new PeftDslException($"{directory}: no {ConfigFile} in the folder or its subfolders; expected a peft adapter folder");
        return result;
    }

    internal static void Load(AdapterRegistry registry, LanguageModel model, string directory, string name)
    {
        if (!Directory.Exists(directory)) throw new PeftDslException($"{directory}: adapter folder not found");
        var configPath = Path.Combine(directory, ConfigFile);
        var weightsPath = Path.Combine(directory, WeightsFile);
        var json = LoraConfigJson.ReadObject(configPath);
        var type = json["peft_type"] is System.Text.Json.Nodes.JsonValue v && v.GetValueKind() == System.Text.Json.JsonValueKind.String
            ? v.GetValue<string>()
            : throw new PeftDslException($"{configPath}: no \"peft_type\"; is this a peft adapter folder?");
        if (type != LoraConfigJson.PeftType)
            throw new PeftDslException($"{configPath}: peft_type '{type}' is not supported yet (PeftDsl loads LORA adapters)");
        var config = LoraConfigJson.Parse(json, configPath);
        CheckTask(config.TaskType, model, configPath);
        if (!File.Exists(weightsPath))
        {
            var hint = File.Exists(Path.Combine(directory, "adapter_model.bin"))
                ? " (adapter_model.bin is not read: pickle files can run code; save it with safe_serialization=True)"
                : "";
            throw new PeftDslException($"{directory}: no {WeightsFile}{hint}");
        }
        using var reader = SafetensorsReader.Open(weightsPath);
        // Shapes are checked against the file before anything is allocated, so a config that lies about r (1e9)
        // is refused instead of attempting a huge allocation.
        var targets = LoraTargets.Resolve(config, registry.Linears(), model.ConfigModelType, configPath);
        var expected = Expected(targets, config.UseDora);
        if (config.TrainableTokenIndices is { } tokens && registry.TokenTableShape() is { } table)
            expected[Prefix + table.Path + TokenSuffix] = ([tokens.Count, table.Dim], $"{tokens.Count} trainable tokens × dim {table.Dim}");
        foreach (var (path, shape) in registry.SavedCopyShapes(config))
            expected[Prefix + path + ".weight"] = (shape, "modules_to_save: the whole module");
        AdapterFolder.CheckFits(reader, weightsPath, expected, Why);
        registry.Inject(name, config, configPath, initialize: false);
        try
        {
            Fill(reader, targets, name);
            using (no_grad())
            {
                if (registry.TokenRows(name) is { } rows) Copy(reader, Prefix + rows.Path + TokenSuffix, rows.Rows);
                foreach (var (path, weight) in registry.SavedCopies(name)) Copy(reader, Prefix + path + ".weight", weight);
            }
        }
        catch
        {
            registry.Delete(name);
            throw;
        }
    }

    internal static void Save(LanguageModel model, AdapterRegistry registry, string name, string folder) =>
        AtomicFolder.Write(folder, staging => WriteFiles(model, registry, name, staging));

    /// <summary>Writes the adapter's two files into an existing folder (the caller makes it atomic).</summary>
    internal static void WriteFiles(LanguageModel model, AdapterRegistry registry, string name, string folder)
    {
        var config = registry[name];
        var linears = registry.Linears();
        var targeted = linears.Where(l => l.Linear.Lora.Has(name)).ToList();
        var saved = PeftTargetNames.For(config, linears, targeted.Select(t => t.Path).ToHashSet(), model.ConfigModelType) with
        {
            // peft forces fan_in_fan_out to the layout of the targets (true for GPT-2's Conv1D) and records it.
            FanInFanOut = targeted.Any(t => t.Linear.Layout == WeightLayout.Conv1D),
            TaskType = config.TaskType ?? (model is Seq2SeqLanguageModel ? "SEQ_2_SEQ_LM" : "CAUSAL_LM"),
        };
        using var scope = NewDisposeScope();
        var tensors = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (path, linear) in targeted)
        {
            tensors[Prefix + path + ".lora_A.weight"] = linear.Lora.A(name).detach();
            tensors[Prefix + path + ".lora_B.weight"] = linear.Lora.B(name).detach();
            if (linear.Lora.Magnitude(name) is { } m) tensors[Prefix + path + ".lora_magnitude_vector"] = m.detach();
        }
        // Trainable tokens: once, under the embedding (peft does not save a tied head's copy).
        if (registry.TokenRows(name) is { } tokenRows) tensors[Prefix + tokenRows.Path + TokenSuffix] = tokenRows.Rows.detach();
        // modules_to_save: the whole copy, under the module's own key, as peft saves it.
        foreach (var (path, weight) in registry.SavedCopies(name)) tensors[Prefix + path + ".weight"] = weight.detach();
        // Each file appears whole (written beside, then renamed), also when this runs outside an atomic folder write.
        AdapterFolder.Write(folder, LoraConfigJson.Write(saved), tensors);
    }

    /// <summary>Every tensor the file must hold for these targets: key → (shape, what the shape is made of).</summary>
    private static Dictionary<string, (long[] Shape, string Describe)> Expected(IReadOnlyList<LoraTarget> targets, bool dora)
    {
        var expected = new Dictionary<string, (long[] Shape, string Describe)>(StringComparer.Ordinal);
        foreach (var t in targets)
        {
            long inF = t.Linear.InFeatures, outF = t.Linear.OutFeatures;
            expected[Prefix + t.Path + ".lora_A.weight"] = ([t.Rank, inF], $"r={t.Rank}, in={inF}");
            expected[Prefix + t.Path + ".lora_B.weight"] = ([outF, t.Rank], $"out={outF}, r={t.Rank}");
            if (dora) expected[Prefix + t.Path + ".lora_magnitude_vector"] = ([outF], $"out={outF}");
        }
        return expected;
    }


    private static void Fill(SafetensorsReader reader, IReadOnlyList<LoraTarget> targets, string name)
    {
        using var noGrad = no_grad();
        foreach (var t in targets)
        {
            var lora = t.Linear.Lora;
            Copy(reader, Prefix + t.Path + ".lora_A.weight", lora.A(name));
            Copy(reader, Prefix + t.Path + ".lora_B.weight", lora.B(name));
            if (lora.Magnitude(name) is { } m) Copy(reader, Prefix + t.Path + ".lora_magnitude_vector", m);
        }
    }

    private static void Copy(SafetensorsReader reader, string key, Tensor target)
    {
        using var scope = NewDisposeScope();
        target.copy_(reader.ReadFinite(key).to(target.dtype, target.device));
    }

    private static string Why(string key) =>
        !key.StartsWith(Prefix, StringComparison.Ordinal) ? $" (not a peft key: expected the '{Prefix}' prefix)"
        : !Suffixes.Any(s => key.EndsWith(s, StringComparison.Ordinal)) ? " (not a LoRA tensor PeftDsl reads)"
        : "";

    private static void CheckTask(string? task, LanguageModel model, string source)
    {
        var seq2seq = model is Seq2SeqLanguageModel;
        switch (task)
        {
            case null:
            case "CAUSAL_LM" when !seq2seq:
            case "SEQ_2_SEQ_LM" when seq2seq:
                return;
            case "CAUSAL_LM" or "SEQ_2_SEQ_LM":
                throw new PeftDslException($"{source}: task_type is {task}, but the model is {(seq2seq ? "an encoder-decoder (SEQ_2_SEQ_LM)" : "a causal LM (CAUSAL_LM)")}; is this adapter made for another base?");
            default:
                throw new PeftDslException($"{source}: task_type '{task}' is not supported (CAUSAL_LM and SEQ_2_SEQ_LM are)");
        }
    }
}
