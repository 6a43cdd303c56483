using System.Text.RegularExpressions;
using PeftDsl.Errors;

namespace PeftDsl.Data;

/// <summary>
/// How a JSONL record becomes a prompt and an answer. Without a template: <c>{"input": …, "output": …}</c>. With one
/// (NeMo's task records): the prompt is the template with <c>{field}</c> filled from the record, the answer is
/// <see cref="AnswerField"/>, and <see cref="TruncateField"/> is the field cut when an example is too long.
/// </summary>
public sealed partial record DataFormat(string? Template = null, string AnswerField = "output", string? TruncateField = null,
    string InputField = "input")
{
    public static readonly DataFormat InputOutput = new();

    [GeneratedRegex(@"\{([A-Za-z_][A-Za-z0-9_]*)\}")]
    private static partial Regex FieldPattern();

    /// <summary>The fields the prompt reads, in order.</summary>
    public IReadOnlyList<string> PromptFields => Template is null
        ? [InputField]
        : FieldPattern().Matches(Template).Select(m => m.Groups[1].Value).Distinct().ToList();

    public DataFormat Validate()
    {
        if (Template is not null && PromptFields.Count == 0)
            throw new PeftDslException($"--template '{Template}' names no field; write fields as {{name}}");
        if (StrayBrace() is { } at)
            throw new PeftDslException($"--template '{Template}': a '{{' or '}}' that is not part of a {{field}} (at \"{Template![at..Math.Min(Template!.Length, at + 16)]}\"); fields are written {{name}}, with letters, digits and _");
        if (TruncateField is { } t && !PromptFields.Contains(t))
            throw new PeftDslException($"--truncate-field '{t}' is not a field of the prompt ({string.Join(", ", PromptFields)})");
        if (PromptFields.Contains(AnswerField))
            throw new PeftDslException($"the answer field '{AnswerField}' is also in the prompt: the model would be shown its answer");
        return this;
    }

    /// <summary>Where the template has a brace outside every {field}: an unclosed or misspelt field.</summary>
    private int? StrayBrace()
    {
        if (Template is null) return null;
        var fields = FieldPattern().Matches(Template);
        for (var i = 0; i < Template.Length; i++)
            if (Template[i] is '{' or '}' && !fields.Any(m => i >= m.Index && i < m.Index + m.Length)) return i;
        return null;
    }

    /// <summary>The prompt text for a record's fields.</summary>
    public string Render(IReadOnlyDictionary<string, string> fields) =>
        Template is null ? fields[InputField] : FieldPattern().Replace(Template, m => fields[m.Groups[1].Value]);
}
