namespace PeftDsl.Tokenization.HuggingFace;

/// <summary>One of tokenizer.json's <c>added_tokens</c>: matched in the text before the model sees it, never split.</summary>
internal sealed record AddedToken(string Content, int Id, bool Special, bool LeftStrip, bool RightStrip, bool Normalized, bool SingleWord)
{
    public static AddedToken Read(JsonSpec spec)
    {
        var content = spec.String("content");
        if (content.Length == 0) throw spec.Error("has empty content");
        var id = spec.Int("id", -1);
        if (id < 0) throw spec.Error($"'{content}' has no id");
        return new(content, id, spec.Bool("special", false), spec.Bool("lstrip", false), spec.Bool("rstrip", false),
            spec.Bool("normalized", !spec.Bool("special", false)), spec.Bool("single_word", false));
    }
}

/// <summary>
/// Finds added tokens in text as tokenizers' AddedVocabulary does: tokens with <c>normalized: false</c> in the raw
/// text first, then, in each piece between them once normalized, those with <c>normalized: true</c>; at each position
/// the longest token wins, the leftmost match first; <c>lstrip</c>/<c>rstrip</c> take the whitespace beside a match,
/// and <c>single_word</c> matches only between non-word characters.
/// </summary>
internal sealed class AddedTokenMatcher
{
    private readonly Dictionary<char, (string Text, AddedToken Token)[]> byFirstChar;

    /// <param name="tokens">Each token with the text it is matched as (its content, or its normalized content).</param>
    public AddedTokenMatcher(IEnumerable<(string Text, AddedToken Token)> tokens) =>
        byFirstChar = tokens.Where(t => t.Text.Length > 0).GroupBy(t => t.Text[0]).ToDictionary(g => g.Key, g => g.OrderByDescending(t => t.Text.Length).ToArray());

    public bool IsEmpty => byFirstChar.Count == 0;

    /// <summary>The text cut into (text, null) and (token's text, token) pieces, in order; empty text pieces are dropped.</summary>
    public List<(int Start, int End, AddedToken? Token)> Split(string text)
    {
        var pieces = new List<(int, int, AddedToken?)>();
        var done = 0;
        for (var i = 0; i < text.Length; i++)
        {
            if (!byFirstChar.TryGetValue(text[i], out var candidates)) continue;
            var (match, token) = candidates.FirstOrDefault(t => string.CompareOrdinal(text, i, t.Text, 0, t.Text.Length) == 0);
            if (token is null) continue;
            var (start, end) = (i, i + match.Length);
            // A single_word token inside a word is not a match; as tokenizers' non-overlapping search, matching goes
            // on after it.
            if (token.SingleWord && (start > 0 && IsWordChar(text[start - 1]) || end < text.Length && IsWordChar(text[end])))
            {
                i = end - 1;
                continue;
            }
            if (token.LeftStrip) while (start > done && char.IsWhiteSpace(text[start - 1])) start--;
            if (token.RightStrip) while (end < text.Length && char.IsWhiteSpace(text[end])) end++;
            if (start > done) pieces.Add((done, start, null));
            pieces.Add((start, end, token));
            done = end;
            i = end - 1;
        }
        if (done < text.Length) pieces.Add((done, text.Length, null));
        return pieces;
    }

    // Regex \w: letters, digits, marks and connector punctuation.
    private static bool IsWordChar(char c) => char.IsLetterOrDigit(c) || char.GetUnicodeCategory(c) is
        System.Globalization.UnicodeCategory.NonSpacingMark or System.Globalization.UnicodeCategory.SpacingCombiningMark or System.Globalization.UnicodeCategory.ConnectorPunctuation;
}
