using System.Text;
using System.Text.Json.Nodes;
using PeftDsl.Checkpoints.Safetensors;
using PeftDsl.Errors;
using static TorchSharp.torch;

namespace PeftDsl.Peft;

/// <summary>
/// peft's adapter folder, as every method writes and checks it: <c>adapter_config.json</c> beside
/// <c>adapter_model.safetensors</c>. What differs per method (the config's fields, the tensors' names) stays in that
/// method's folder; the file mechanics live here once.
/// </summary>
public static class AdapterFolder
{
    /// <summary>The config file's name, <c>adapter_config.json</c> (peft's <c>CONFIG_NAME</c>).</summary>
    public const string ConfigFile = "adapter_config.json";
    /// <summary>The weights file's name, <c>adapter_model.safetensors</c> (peft's <c>SAFETENSORS_WEIGHTS_NAME</c>).</summary>
    public const string WeightsFile = "adapter_model.safetensors";
    private const int ListedPerKind = 20;

    /// <summary>Writes the config and the tensors into an existing folder, each file whole (written beside, then renamed).</summary>
    public static void Write(string folder, string configJson, IReadOnlyDictionary<string, Tensor> tensors)
    {
        SafetensorsWriter.Save(Path.Combine(folder, WeightsFile), tensors, new Dictionary<string, string> { ["format"] = "pt" });
        WriteConfig(folder, configJson);
    }

    /// <summary>Writes <c>adapter_config.json</c> whole (written beside, then renamed).</summary>
    public static void WriteConfig(string folder, string configJson)
    {
        var path = Path.Combine(folder, ConfigFile);
        File.WriteAllText(path + ".tmp", configJson);
        File.Move(path + ".tmp", path, overwrite: true);
    }

    /// <summary>Reads a trained tensor (an adapter's, a prompt's, an optimizer moment), refusing one that holds NaN or
    /// infinite values: such a file comes from a run that diverged, and would load without a word and compute NaN.</summary>
    public static Tensor ReadFinite(this SafetensorsReader reader, string key)
    {
        var value = reader.Read(key);
        if (value.is_floating_point() && !value.isfinite().all().item<bool>())
        {
            value.Dispose();
            throw new PeftDslException($"{reader.Path}: '{key}' holds NaN or infinite values; refusing to load it (was it saved by a run that diverged?)");
        }
        return value;
    }

    /// <summary>The folder's <c>peft_type</c>, or null when its config names none.</summary>
    public static string? PeftType(string folder) =>
        Lora.LoraConfigJson.ReadObject(Path.Combine(folder, ConfigFile))["peft_type"] is JsonValue v
        && v.GetValueKind() == System.Text.Json.JsonValueKind.String ? v.GetValue<string>() : null;

    /// <summary>
    /// Refuses a weights file that does not hold exactly <paramref name="expected"/> (key → shape and what the shape is
    /// made of), listing the missing, unexpected and mis-shaped tensors; checked before anything is allocated.
    /// </summary>
    /// <param name="why">Appended to an unexpected key, saying why it is not read (or "").</param>
    public static void CheckFits(SafetensorsReader reader, string weightsPath, IReadOnlyDictionary<string, (long[] Shape, string Describe)> expected,
        Func<string, string>? why = null)
    {
        var missing = expected.Keys.Where(k => !reader.Entries.ContainsKey(k)).Order(StringComparer.Ordinal).ToList();
        var unexpected = reader.Entries.Keys.Where(k => !expected.ContainsKey(k)).Order(StringComparer.Ordinal)
            .Select(k => k + (why?.Invoke(k) ?? "")).ToList();
        var wrongShape = expected.Where(e => reader.Entries.TryGetValue(e.Key, out var entry) && !entry.Shape.SequenceEqual(e.Value.Shape))
            .Select(e => $"{e.Key}: file {reader.Entries[e.Key].ShapeText}, model expects [{string.Join(", ", e.Value.Shape)}]" +
                         (e.Value.Describe.Length > 0 ? $" ({e.Value.Describe})" : ""))
            .Order(StringComparer.Ordinal).ToList();
        if (missing.Count + unexpected.Count + wrongShape.Count == 0) return;
        var text = new StringBuilder($"{weightsPath}: the adapter does not fit this model");
        Append(text, "missing tensors", missing);
        Append(text, "tensors for modules the config does not target or the model lacks", unexpected);
        Append(text, "wrong shapes", wrongShape);
        throw new PeftDslException(text.ToString());
    }

    private static void Append(StringBuilder text, string title, List<string> items)
    {
        if (items.Count == 0) return;
        text.Append($"\n  {title} ({items.Count}):");
        foreach (var item in items.Take(ListedPerKind)) text.Append("\n    ").Append(item);
        if (items.Count > ListedPerKind) text.Append($"\n    … and {items.Count - ListedPerKind} more");
    }
}
