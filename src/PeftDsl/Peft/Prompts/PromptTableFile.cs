using System.Text.Json;
using System.Text.Json.Nodes;
using PeftDsl.Checkpoints;
using PeftDsl.Checkpoints.Safetensors;
using PeftDsl.Errors;
using static TorchSharp.torch;

namespace PeftDsl.Peft.Prompts;

/// <summary>
/// NeMo's multi-task prompt table on disk: <c>prompt_table.safetensors</c> holds one tensor per task, named after it
/// (the task's rows, as peft's <c>prompt_embeddings</c>), and <c>prompt_table.json</c> indexes them:
/// <c>{"format": "peftdsl-prompt-table", "version": 1, "tasks": {name: {"config": adapter_config, "template": …}}}</c>.
/// Adding a task rewrites the folder atomically; the other tasks' tensors are copied through unchanged, byte for byte.
/// </summary>
public static class PromptTableFile
{
    /// <summary>The index file's name, <c>prompt_table.json</c>: format, version, and each task's config and template.</summary>
    public const string IndexFile = "prompt_table.json";
    /// <summary>The tensors file's name, <c>prompt_table.safetensors</c>: one [total virtual tokens, row width] tensor per task, named after it.</summary>
    public const string TensorsFile = "prompt_table.safetensors";
    private const string Format = "peftdsl-prompt-table";

    /// <summary>One task of a table: its config, rows, and the prompt template (with NeMo's virtual-token splits) it
    /// was trained with, or null for the plain input field.</summary>
    public sealed record Entry(PromptConfig Config, Tensor Rows, string? Template, IReadOnlyList<int>? Splits = null);

    /// <summary>True when <paramref name="directory"/> holds a prompt table (a <c>prompt_table.json</c>), not a single peft adapter.</summary>
    public static bool IsTable(string directory) => File.Exists(Path.Combine(directory, IndexFile));

    /// <summary>Every task of the table, in the index's order (the caller's dispose scope owns the tensors).</summary>
    public static IReadOnlyList<(string Task, Entry Entry)> Read(string directory)
    {
        var indexPath = Path.Combine(directory, IndexFile);
        var index = Lora.LoraConfigJson.ReadObject(indexPath);
        if (ConfigFields.Str(index, "format", indexPath) != Format)
            throw new PeftDslException($"{indexPath}: not a prompt table (expected \"format\": \"{Format}\")");
        if (index["tasks"] is not JsonObject tasks) throw new PeftDslException($"{indexPath}: no \"tasks\" object");
        var tensorsPath = Path.Combine(directory, TensorsFile);
        if (!File.Exists(tensorsPath)) throw new PeftDslException($"{directory}: no {TensorsFile} beside {IndexFile}");
        using var reader = SafetensorsReader.Open(tensorsPath);
        var result = new List<(string, Entry)>();
        foreach (var (task, node) in tasks)
        {
            if (node is not JsonObject entry || entry["config"] is not JsonObject config)
                throw new PeftDslException($"{indexPath}: task '{task}' has no \"config\" object");
            var parsed = PromptConfigJson.Parse(config, $"{indexPath} (task '{task}')");
            if (!reader.Entries.TryGetValue(task, out var tensor))
                throw new PeftDslException($"{tensorsPath}: no tensor for task '{task}' of the index");
            if (tensor.Shape.Length != 2 || tensor.Shape[0] != parsed.TotalVirtualTokens || tensor.Shape[1] != parsed.RowWidth)
                throw new PeftDslException($"{tensorsPath}: task '{task}' is {tensor.ShapeText}, its config means [{parsed.TotalVirtualTokens}, {parsed.RowWidth}]");
            var splits = entry["virtual_token_splits"] switch
            {
                null => null,
                JsonArray a when a.All(n => n is JsonValue v && v.TryGetValue<int>(out var x) && x > 0) => a.Select(n => n!.GetValue<int>()).ToList(),
                var other => throw new PeftDslException($"{indexPath}: task '{task}': virtual_token_splits must be a list of positive whole numbers, got {other.ToJsonString()}"),
            };
            result.Add((task, new Entry(parsed, reader.ReadFinite(task), ConfigFields.Str(entry, "template", $"{indexPath} (task '{task}')"), splits)));
        }
        var orphans = reader.Entries.Keys.Where(k => !tasks.ContainsKey(k)).ToList();
        if (orphans.Count > 0) throw new PeftDslException($"{tensorsPath}: tensors without an index entry: {string.Join(", ", orphans)}");
        return result;
    }

    /// <summary>Adds (or, with <paramref name="replace"/>, replaces) one task, keeping every other task as it was.</summary>
    public static void Add(string directory, string task, Entry entry, bool replace = false)
    {
        using var scope = NewDisposeScope();
        var existing = Directory.Exists(directory) && IsTable(directory) ? Read(directory).ToList() : [];
        if (!replace && existing.Any(e => e.Task == task))
            throw new PeftDslException($"{directory}: the table already has a task '{task}'; choose another --task name");
        var index = existing.FindIndex(e => e.Task == task);
        if (index >= 0) existing[index] = (task, entry);
        else existing.Add((task, entry));
        AtomicFolder.Write(directory, staging =>
        {
            SafetensorsWriter.Save(Path.Combine(staging, TensorsFile), existing.ToDictionary(e => e.Task, e => e.Entry.Rows));
            var tasks = new JsonObject();
            foreach (var (name, e) in existing)
                tasks[name] = new JsonObject
                {
                    ["config"] = JsonNode.Parse(PromptConfigJson.Write(e.Config)),
                    ["template"] = e.Template,
                    ["virtual_token_splits"] = e.Splits is { } s ? new JsonArray(s.Select(x => (JsonNode)x).ToArray()) : null,
                };
            var json = new JsonObject { ["format"] = Format, ["version"] = 1, ["tasks"] = tasks };
            File.WriteAllText(Path.Combine(staging, IndexFile), json.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        });
    }
}
