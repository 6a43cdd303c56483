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
    private readonly Dictionary<char, AddedToken[]> byFirstChar;

    public AddedTokenMatcher(IEnumerable<AddedToken> tokens) =>
        byFirstChar = tokens.GroupBy(t => t.Content[0]).ToDictionary(g => g.Key, g => g.OrderByDescending(t => t.Content.Length).ToArray());

    public bool IsEmpty => byFirstChar.Count == 0;

    /// <summary>The text cut into (text, null) and (token's text, token) pieces, in order; empty text pieces are dropped.</summary>
    public List<(int Start, int End, AddedToken? Token)> Split(string text)
    {
        var pieces = new List<(int, int, AddedToken?)>();
        var done = 0;
        for (var i = 0; i < text.Length; i++)
        {
            if (!byFirstChar.TryGetValue(text[i], out var candidates)) continue;
            var token = candidates.FirstOrDefault(t => string.CompareOrdinal(text, i, t.Content, 0, t.Content.Length) == 0);
            if (token is null) continue;
            var (start, end) = (i, i + token.Content.Length);
            if (token.SingleWord && (start > 0 && IsWordChar(text[start - 1]) || end < text.Length && IsWordChar(text[end]))) continue;
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

    private static bool IsWordChar(char c) => char.IsLetterOrDigit(c) || c == '_';
}
