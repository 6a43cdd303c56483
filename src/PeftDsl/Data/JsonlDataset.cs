using System.Text;
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
        var examples = Records(path).Select(r => Parse(r.Root, r.Source, format, defaultTask)).ToList();
        if (examples.Count == 0) throw new PeftDslException($"{path}: no examples (the file is empty or blank)");
        return examples;
    }

    /// <summary>Whether the file holds conversations: its first record has a <c>"messages"</c> field (TRL's and
    /// OpenAI's format), as every record must then.</summary>
    public static bool HoldsConversations(string path) =>
        Records(path).Take(1).Any(r => r.Root.ValueKind == JsonValueKind.Object && r.Root.TryGetProperty("messages", out _));

    /// <summary>The file's records, each parsed as JSON with its <c>file:line</c>; blank lines are skipped, and a line
    /// that is not UTF-8 or not JSON is an error naming it.</summary>
    public static IEnumerable<(JsonElement Root, string Source)> Records(string path)
    {
        if (!File.Exists(path)) throw new PeftDslException($"{path}: data file not found");
        var lineNumber = 0;
        // Strict UTF-8: a broken byte is an error naming its line, not a silent U+FFFD in the training text.
        using var reader = new StreamReader(path, new UTF8Encoding(false, throwOnInvalidBytes: true), detectEncodingFromByteOrderMarks: true);
        while (NextLine(reader, path) is { } line)
        {
            lineNumber++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            var source = $"{path}:{lineNumber}";
            yield return (ParseJson(line, source), source);
        }
    }

    private static string? NextLine(StreamReader reader, string path)
    {
        try
        {
            return reader.ReadLine();
        }
        catch (DecoderFallbackException)
        {
            // The reader decodes a buffer ahead of the line it returns, so find the broken line in the bytes.
            throw new PeftDslException($"{path}:{FirstInvalidUtf8Line(path)}: not valid UTF-8 (the file must be UTF-8 text)");
        }
    }

    private static int FirstInvalidUtf8Line(string path)
    {
        var bytes = File.ReadAllBytes(path).AsSpan();
        for (var line = 1; ; line++)
        {
            var end = bytes.IndexOf((byte)'\n');
            if (!System.Text.Unicode.Utf8.IsValid(end < 0 ? bytes : bytes[..end]) || end < 0) return line;
            bytes = bytes[(end + 1)..];
        }
    }

    private static JsonElement ParseJson(string line, string source)
    {
        try
        {
            using var doc = JsonDocument.Parse(line, new JsonDocumentOptions { MaxDepth = 16 });
            return doc.RootElement.Clone();
        }
        catch (JsonException e)
        {
            var column = e.BytePositionInLine is { } b ? $" at column {b + 1}" : "";
            throw new PeftDslException($"{source}: not valid JSON{column} ({e.Message.Split(". ")[0].TrimEnd('.')})");
        }
    }

    private static Example Parse(JsonElement root, string source, DataFormat format, string defaultTask)
    {
        if (root.ValueKind == JsonValueKind.Object && root.TryGetProperty("messages", out _))
            throw new PeftDslException($"{source}: a conversation (\"messages\") in a file whose first record is not one; a file holds prompt/answer records or conversations, not both");
        if (root.ValueKind != JsonValueKind.Object) throw new PeftDslException($"{source}: expected a JSON object, got {root.ValueKind}");
        var fields = new Dictionary<string, string>(StringComparer.Ordinal);
        (IReadOnlyList<string> Choices, int Label)? choices = root.TryGetProperty("choices", out var c) ? Choices(c, root, source) : null;
        foreach (var name in choices is null ? format.PromptFields.Append(format.AnswerField) : format.PromptFields)
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
        var task = TaskOf(root, source, defaultTask);
        if (choices is { } mc) return new Example(task, fields, mc.Choices[mc.Label], source, mc.Choices, mc.Label);
        var answer = fields[format.AnswerField];
        if (string.IsNullOrWhiteSpace(answer)) throw new PeftDslException($"{source}: \"{format.AnswerField}\" (the answer) is empty");
        fields.Remove(format.AnswerField);
        return new Example(task, fields, answer, source);
    }

    /// <summary>The record's <c>taskname</c>, or <paramref name="defaultTask"/> without one.</summary>
    internal static string TaskOf(JsonElement root, string source, string defaultTask) => root.TryGetProperty("taskname", out var t)
        ? t.ValueKind == JsonValueKind.String && t.GetString() is { Length: > 0 } s ? s : throw new PeftDslException($"{source}: \"taskname\" must be a non-empty string")
        : defaultTask;

    /// <summary>A multiple-choice record's <c>choices</c> (two or more non-empty strings) and <c>label</c> (the right one's index).</summary>
    private static (IReadOnlyList<string> Choices, int Label) Choices(JsonElement choices, JsonElement root, string source)
    {
        if (choices.ValueKind != JsonValueKind.Array || choices.GetArrayLength() < 2
            || choices.EnumerateArray().Any(x => x.ValueKind != JsonValueKind.String || string.IsNullOrWhiteSpace(x.GetString())))
            throw new PeftDslException($"{source}: \"choices\" must be a list of two or more non-empty strings");
        var list = choices.EnumerateArray().Select(x => x.GetString()!).ToList();
        if (!root.TryGetProperty("label", out var label) || label.ValueKind != JsonValueKind.Number || !label.TryGetInt32(out var index))
            throw new PeftDslException($"{source}: a record with \"choices\" needs \"label\", the index of the right choice");
        if (index < 0 || index >= list.Count)
            throw new PeftDslException($"{source}: \"label\" {index} is not an index of the {list.Count} choices (0 … {list.Count - 1})");
        return (list, index);
    }
}
