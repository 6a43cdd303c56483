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

    /// <summary>
    /// Regex matches by code point, as tokenizers' engines take them. .NET's Regex sees UTF-16 units, so a character
    /// outside the Basic Multilingual Plane (an emoji, 𝐀) would be two surrogates that match no \p{L} or \p{So}:
    /// "😁nice" would split where tokenizers keeps one piece. Such a character is matched as a stand-in BMP character
    /// of the same Unicode category, and the matches are mapped back.
    /// </summary>
    private static IEnumerable<(int Start, int Length)> RegexMatches(Regex regex, string text)
    {
        if (!text.AsSpan().ContainsAnyInRange('\uD800', '\uDFFF'))
        {
            foreach (Match m in regex.Matches(text)) yield return (m.Index, m.Length);
            yield break;
        }
        var mapped = new System.Text.StringBuilder(text.Length);
        var origin = new List<int>(text.Length + 1);   // mapped index → index in text
        for (var i = 0; i < text.Length;)
        {
            origin.Add(i);
            if (System.Text.Rune.DecodeFromUtf16(text.AsSpan(i), out var rune, out var used) == System.Buffers.OperationStatus.Done && used == 2)
                mapped.Append(StandIn(System.Text.Rune.GetUnicodeCategory(rune)));
            else
                mapped.Append(text[i]);
            i += used > 0 ? used : 1;
        }
        origin.Add(text.Length);
        foreach (Match m in regex.Matches(mapped.ToString()))
            yield return (origin[m.Index], origin[m.Index + m.Length] - origin[m.Index]);
    }

    private static readonly Dictionary<System.Globalization.UnicodeCategory, char> StandIns = BuildStandIns();

    /// <summary>For each category, the first non-ASCII BMP character of it (never a character a pattern names).</summary>
    private static Dictionary<System.Globalization.UnicodeCategory, char> BuildStandIns()
    {
        var table = new Dictionary<System.Globalization.UnicodeCategory, char>();
        for (var c = (char)0xA0; c < 0xD800; c++) table.TryAdd(char.GetUnicodeCategory(c), c);
        for (var c = (char)0xE000; c < 0xFFFF; c++) table.TryAdd(char.GetUnicodeCategory(c), c);
        return table;
    }

    private static char StandIn(System.Globalization.UnicodeCategory category) => StandIns.TryGetValue(category, out var c) ? c : '\uFFFD';

    public string Replace(string text, string content) =>
        regex is not null ? regex.Replace(text, content.Replace("$", "$$")) : literal!.Length == 0 ? text : text.Replace(literal, content, StringComparison.Ordinal);

    private IEnumerable<(int Start, int Length)> Matches(string text)
    {
        if (regex is not null)
        {
            foreach (var m in RegexMatches(regex, text)) yield return m;
            yield break;
        }
        if (literal!.Length == 0) yield break;
        for (var at = text.IndexOf(literal, StringComparison.Ordinal); at >= 0; at = text.IndexOf(literal, at + literal.Length, StringComparison.Ordinal))
            yield return (at, literal.Length);
    }
}
