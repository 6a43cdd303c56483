using System.Text.Json;
using PeftDsl.Errors;

namespace PeftDsl.Data;

/// <summary>
/// Reads JSONL examples: one JSON object per line, blank lines skipped. Every problem names the file and the line;
/// nothing is skipped silently.
/// </summary>
public static class JsonlDataset
{
    /// <param name="defaultTask">The task of records without a <c>taskname</c> field.</param>
    public static IReadOnlyList<Example> Read(string path, DataFormat format, string defaultTask = "default")
    {
        format.Validate();
        if (!File.Exists(path)) throw new PeftDslException($"{path}: data file not found");
        var examples = new List<Example>();
        var lineNumber = 0;
        foreach (var line in File.ReadLines(path))
        {
            lineNumber++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            var source = $"{path}:{lineNumber}";
            examples.Add(Parse(line, source, format, defaultTask));
        }
        if (examples.Count == 0) throw new PeftDslException($"{path}: no examples (the file is empty or blank)");
        return examples;
    }

    private static Example Parse(string line, string source, DataFormat format, string defaultTask)
    {
        JsonElement root;
        try
        {
            using var doc = JsonDocument.Parse(line, new JsonDocumentOptions { MaxDepth = 16 });
            root = doc.RootElement.Clone();
        }
        catch (JsonException e)
        {
            throw new PeftDslException($"{source}: not valid JSON ({e.Message.Split('.')[0]})");
        }
        if (root.ValueKind != JsonValueKind.Object) throw new PeftDslException($"{source}: expected a JSON object, got {root.ValueKind}");
        var fields = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var name in format.PromptFields.Append(format.AnswerField))
        {
            if (!root.TryGetProperty(name, out var value))
            {
                var what = name == format.AnswerField ? "answer field" : format.Template is null ? "input field" : $"template field {{{name}}}";
                throw new PeftDslException($"{source}: no \"{name}\" ({what}); the record has: {string.Join(", ", root.EnumerateObject().Select(p => p.Name))}");
            }
            fields[name] = value.ValueKind switch
            {
                JsonValueKind.String => value.GetString()!,
                JsonValueKind.Number or JsonValueKind.True or JsonValueKind.False => value.GetRawText(),
                _ => throw new PeftDslException($"{source}: \"{name}\" must be text, got {value.ValueKind}"),
            };
        }
        var task = root.TryGetProperty("taskname", out var t)
            ? t.ValueKind == JsonValueKind.String && t.GetString() is { Length: > 0 } s ? s : throw new PeftDslException($"{source}: \"taskname\" must be a non-empty string")
            : defaultTask;
        var answer = fields[format.AnswerField];
        fields.Remove(format.AnswerField);
        return new Example(task, fields, answer, source);
    }
}
