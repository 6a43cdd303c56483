using System.Text.RegularExpressions;
using PeftDsl.Errors;

namespace PeftDsl.Data;

/// <summary>
/// How a JSONL record becomes a prompt and an answer. Without a template: <c>{"input": …, "output": …}</c>. With one
/// (NeMo's task records): the prompt is the template with <c>{field}</c> filled from the record, the answer is
/// <see cref="AnswerField"/>, and <see cref="TruncateField"/> is the field cut when an example is too long.
/// </summary>
/// <param name="VirtualTokenSplits">NeMo's <c>virtual_token_splits</c>: how many of the task's virtual tokens each
/// <c>&lt;|VIRTUAL_PROMPT_k|&gt;</c> marker of the template stands for; null when the template has no marker.</param>
public sealed partial record DataFormat(string? Template = null, string AnswerField = "output", string? TruncateField = null,
    string InputField = "input", IReadOnlyList<int>? VirtualTokenSplits = null)
{
    [GeneratedRegex(@"<\|VIRTUAL_PROMPT_(\d+)\|>")]
    internal static partial Regex MarkerPattern();

    /// <summary>NeMo's virtual-prompt markers in the template, in order.</summary>
    public int Markers => Template is null ? 0 : MarkerPattern().Matches(Template).Count;

    /// <summary>This format for a task of <paramref name="count"/> virtual tokens: one marker takes them all; several
    /// need <see cref="VirtualTokenSplits"/> adding up to the count.</summary>
    public DataFormat ForVirtualTokens(int count)
    {
        if (Markers == 0)
        {
            if (VirtualTokenSplits is not null)
                throw new PeftDslException("--virtual-token-splits needs a --template with <|VIRTUAL_PROMPT_0|> markers");
            return this;
        }
        var splits = VirtualTokenSplits ?? (Markers == 1 ? [count]
            : throw new PeftDslException($"--template has {Markers} virtual-prompt markers: give --virtual-token-splits, {Markers} numbers adding up to the {count} virtual tokens"));
        if (splits.Sum() != count)
            throw new PeftDslException($"--virtual-token-splits {string.Join(",", splits)} add up to {splits.Sum()}, but the task has {count} virtual tokens");
        return this with { VirtualTokenSplits = splits };
    }
    /// <summary>The default: no template, prompt from the <c>input</c> field, answer from <c>output</c>.</summary>
    public static readonly DataFormat InputOutput = new();

    [GeneratedRegex(@"\{([A-Za-z_][A-Za-z0-9_]*)\}")]
    private static partial Regex FieldPattern();

    /// <summary>The fields the prompt reads, in order.</summary>
    public IReadOnlyList<string> PromptFields => Template is null
        ? [InputField]
        : FieldPattern().Matches(Template).Select(m => m.Groups[1].Value).Distinct().ToList();

    /// <summary>Checks the format before any data is read: the template names fields and has no stray braces, markers are
    /// numbered in order, the splits match the markers, the truncation field is in the prompt, and the answer is not.</summary>
    /// <returns>This format, for chaining.</returns>
    /// <exception cref="PeftDslException">The format is inconsistent; the message names the CLI option at fault.</exception>
    public DataFormat Validate()
    {
        if (Template is not null && PromptFields.Count == 0)
            throw new PeftDslException($"--template '{Template}' names no field; write fields as {{name}}");
        if (StrayBrace() is { } at)
            throw new PeftDslException($"--template '{Template}': a '{{' or '}}' that is not part of a {{field}} (at \"{Template![at..Math.Min(Template!.Length, at + 16)]}\"); fields are written {{name}}, with letters, digits and _");
        var markers = Template is null ? [] : MarkerPattern().Matches(Template).Select(m => m.Groups[1].Value).ToList();
        for (var k = 0; k < markers.Count; k++)
            if (markers[k] != k.ToString(System.Globalization.CultureInfo.InvariantCulture))
                throw new PeftDslException($"--template: virtual-prompt markers must be numbered <|VIRTUAL_PROMPT_0|>, <|VIRTUAL_PROMPT_1|>, … in order; marker {k + 1} is <|VIRTUAL_PROMPT_{markers[k]}|>");
        if (VirtualTokenSplits is { } splits)
        {
            if (splits.Any(s => s <= 0)) throw new PeftDslException($"--virtual-token-splits must be positive whole numbers, got {string.Join(",", splits)}");
            if (markers.Count > 0 && splits.Count != markers.Count)
                throw new PeftDslException($"--virtual-token-splits has {splits.Count} numbers, the template {markers.Count} virtual-prompt markers");
        }
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

    /// <summary>The prompt around its k virtual-prompt markers: k + 1 pieces, each filled separately, so a field's
    /// text is never read as a marker.</summary>
    public IReadOnlyList<string> RenderAroundMarkers(IReadOnlyDictionary<string, string> fields) =>
        MarkerPattern().Split(Template ?? fields[InputField]).Where((_, i) => i % 2 == 0)   // odd entries are the marker numbers
            .Select(piece => Template is null ? piece : FieldPattern().Replace(piece, m => fields[m.Groups[1].Value])).ToList();

    /// <summary>The prompt text for a record's fields.</summary>
    public string Render(IReadOnlyDictionary<string, string> fields) =>
        Template is null ? fields[InputField] : FieldPattern().Replace(Template, m => fields[m.Groups[1].Value]);
}
