using System.Text.RegularExpressions;

namespace PeftDsl.Tokenization.HuggingFace;

/// <summary>tokenizer.json's <c>{"String": …}</c> or <c>{"Regex": …}</c> pattern (Split, Replace).</summary>
internal sealed class TextPattern
{
    private readonly string? literal;
    private readonly Regex? regex;

    private TextPattern(string? literal, Regex? regex) => (this.literal, this.regex) = (literal, regex);

    public static TextPattern FromRegex(Regex regex) => new(null, regex);

    public static TextPattern FromLiteral(string literal) => new(literal, null);

    public static TextPattern Read(JsonSpec spec)
    {
        var pattern = spec.Child("pattern");
        if (pattern.Has("String")) return new(pattern.String("String"), null);
        if (!pattern.Has("Regex")) throw pattern.Error("is neither {\"String\": …} nor {\"Regex\": …}");
        var source = pattern.String("Regex");
        try
        {
            return new(null, new Regex(source, RegexOptions.CultureInvariant));
        }
        catch (ArgumentException e)
        {
            throw pattern.Error($"the regex is not one .NET can compile ({e.Message})");
        }
    }

    /// <summary>The text cut into consecutive pieces, each marked as a match or not, as tokenizers' Pattern does.</summary>
    public List<(int Start, int End, bool IsMatch)> Pieces(string text)
    {
        var pieces = new List<(int, int, bool)>();
        var previous = 0;
        foreach (var (start, length) in Matches(text))
        {
            if (previous != start) pieces.Add((previous, start, false));
            pieces.Add((start, start + length, true));
            previous = start + length;
        }
        if (previous != text.Length) pieces.Add((previous, text.Length, false));
        return pieces;
    }

    public string Replace(string text, string content) =>
        regex is not null ? regex.Replace(text, content.Replace("$", "$$")) : literal!.Length == 0 ? text : text.Replace(literal, content, StringComparison.Ordinal);

    private IEnumerable<(int Start, int Length)> Matches(string text)
    {
        if (regex is not null)
        {
            foreach (Match m in regex.Matches(text)) yield return (m.Index, m.Length);
            yield break;
        }
        if (literal!.Length == 0) yield break;
        for (var at = text.IndexOf(literal, StringComparison.Ordinal); at >= 0; at = text.IndexOf(literal, at + literal.Length, StringComparison.Ordinal))
            yield return (at, literal.Length);
    }
}
