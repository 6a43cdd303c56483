using PeftDsl.Checkpoints.Safetensors;
using PeftDsl.Errors;
using static TorchSharp.torch;

namespace PeftDsl.Peft.Prompts;

/// <summary>
/// peft's prompt-learning adapter folder: <c>adapter_config.json</c> and <c>adapter_model.safetensors</c> holding one
/// tensor, <c>prompt_embeddings</c> [total virtual tokens, row width]: the rows themselves, the P-tuning encoder's
/// output, or prefix tuning's keys and values for every layer.
/// </summary>
public static class PromptAdapterFile
{
    /// <summary>The config file's name, <c>adapter_config.json</c>.</summary>
    public const string ConfigFile = AdapterFolder.ConfigFile;
    /// <summary>The weights file's name, <c>adapter_model.safetensors</c>.</summary>
    public const string WeightsFile = AdapterFolder.WeightsFile;
    /// <summary>The one tensor's key in the weights file, <c>prompt_embeddings</c>: [total virtual tokens, row width].</summary>
    public const string Key = "prompt_embeddings";

    /// <summary>The config and the rows (fp32 or the file's dtype, on the CPU; the caller's dispose scope owns them).</summary>
    public static (PromptConfig Config, Tensor Rows) Read(string directory)
    {
        if (!Directory.Exists(directory)) throw new PeftDslException($"{directory}: adapter folder not found");
        var configPath = Path.Combine(directory, ConfigFile);
        var config = PromptConfigJson.Parse(Lora.LoraConfigJson.ReadObject(configPath), configPath);
        var weights = Path.Combine(directory, WeightsFile);
        if (!File.Exists(weights)) throw new PeftDslException($"{directory}: no {WeightsFile}");
        using var reader = SafetensorsReader.Open(weights);
        var extra = reader.Entries.Keys.Where(k => k != Key).Order(StringComparer.Ordinal).ToList();
        if (!reader.Entries.TryGetValue(Key, out var entry))
            throw new PeftDslException($"{weights}: no '{Key}' tensor" + (extra.Count > 0 ? $" (it holds {string.Join(", ", extra.Take(5))})" : ""));
        if (extra.Count > 0)
            throw new PeftDslException($"{weights}: unexpected tensors beside '{Key}': {string.Join(", ", extra.Take(5))}");
        if (entry.Shape.Length != 2 || entry.Shape[0] != config.TotalVirtualTokens)
            throw new PeftDslException($"{weights}: '{Key}' is {entry.ShapeText}, the config means {config.TotalVirtualTokens} rows " +
                                       $"({config.RowsExplained})");
        return (config, reader.ReadFinite(Key));
    }

    /// <summary>Writes both files into <paramref name="folder"/>, each whole (written beside, then renamed).</summary>
    public static void Write(string folder, PromptConfig config, Tensor rows)
    {
        AdapterFolder.Write(folder, PromptConfigJson.Write(config), new Dictionary<string, Tensor> { [Key] = rows });
    }
}
