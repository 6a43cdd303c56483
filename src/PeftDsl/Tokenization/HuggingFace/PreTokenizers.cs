using System.Text;
using System.Text.RegularExpressions;

namespace PeftDsl.Tokenization.HuggingFace;

/// <summary>A piece of text on its way to the model; <see cref="AtStart"/>: it begins the whole text (Metaspace's
/// "first" scheme prepends only there).</summary>
internal readonly record struct Piece(string Text, bool AtStart);

/// <summary>tokenizer.json's <c>pre_tokenizer</c>: pieces → smaller pieces, each then encoded by the model alone.</summary>
internal static partial class PreTokenizers
{
    private const string Supported = "Split, ByteLevel, Metaspace, Digits, Whitespace, WhitespaceSplit, Sequence";

    public static Func<List<Piece>, List<Piece>> Read(JsonSpec spec) => spec.Type switch
    {
        "Split" => Split(TextPattern.Read(spec), Behavior(spec), spec.Bool("invert", false)),
        "ByteLevel" => ByteLevel(spec.Bool("add_prefix_space", true), spec.Bool("use_regex", true)),
        "Metaspace" => Metaspace(spec),
        "Digits" => Split(new Regex(@"\p{N}"), spec.Bool("individual_digits", false) ? "Isolated" : "Contiguous", false),
        "Whitespace" => Split(WordsOrSymbols(), "Removed", invert: true),
        "WhitespaceSplit" => Split(Spaces(), "Removed", invert: false),
        "Sequence" => Sequence(spec.Items("pretokenizers").Select(Read).ToList()),
        _ => throw spec.Unsupported(Supported),
    };

    private static string Behavior(JsonSpec spec)
    {
        var behavior = spec.String("behavior");
        return behavior is "Removed" or "Isolated" or "MergedWithPrevious" or "MergedWithNext" or "Contiguous"
            ? behavior
            : throw spec.Error($"behavior '{behavior}' is not Removed, Isolated, MergedWithPrevious, MergedWithNext or Contiguous");
    }

    private static Func<List<Piece>, List<Piece>> Sequence(List<Func<List<Piece>, List<Piece>>> steps) =>
        pieces => steps.Aggregate(pieces, (current, step) => step(current));

    private static Func<List<Piece>, List<Piece>> Split(TextPattern pattern, string behavior, bool invert) =>
        pieces => pieces.SelectMany(p => SplitOne(p, pattern.Pieces(p.Text), behavior, invert)).ToList();

    private static Func<List<Piece>, List<Piece>> Split(Regex regex, string behavior, bool invert) =>
        Split(TextPattern.FromRegex(regex), behavior, invert);

    /// <summary>tokenizers' NormalizedString::split: how matches join their neighbours, then empty pieces dropped.</summary>
    private static IEnumerable<Piece> SplitOne(Piece piece, List<(int Start, int End, bool IsMatch)> cuts, string behavior, bool invert)
    {
        if (invert) cuts = cuts.Select(c => (c.Start, c.End, !c.IsMatch)).ToList();
        var kept = new List<(int Start, int End, bool Remove)>();
        switch (behavior)
        {
            case "Isolated":
                kept.AddRange(cuts.Select(c => (c.Start, c.End, false)));
                break;
            case "Removed":
                kept.AddRange(cuts);
                break;
            case "Contiguous":
                bool? lastKind = null;
                foreach (var c in cuts)
                {
                    if (lastKind == c.IsMatch) kept[^1] = (kept[^1].Start, c.End, false);
                    else kept.Add((c.Start, c.End, false));
                    lastKind = c.IsMatch;
                }
                break;
            case "MergedWithPrevious":
                var previousMatch = false;
                foreach (var c in cuts)
                {
                    if (c.IsMatch && !previousMatch && kept.Count > 0) kept[^1] = (kept[^1].Start, c.End, false);
                    else kept.Add((c.Start, c.End, false));
                    previousMatch = c.IsMatch;
                }
                break;
            case "MergedWithNext":
                var nextMatch = false;
                var reversed = new List<(int Start, int End, bool Remove)>();
                for (var i = cuts.Count - 1; i >= 0; i--)
                {
                    var c = cuts[i];
                    if (c.IsMatch && !nextMatch && reversed.Count > 0) reversed[^1] = (c.Start, reversed[^1].End, false);
                    else reversed.Add((c.Start, c.End, false));
                    nextMatch = c.IsMatch;
                }
                reversed.Reverse();
                kept = reversed;
                break;
        }
        foreach (var (start, end, remove) in kept)
            if (!remove && end > start) yield return new Piece(piece.Text[start..end], piece.AtStart && start == 0);
    }

    /// <summary>GPT-2's split (when use_regex), then every UTF-8 byte as its printable stand-in character.</summary>
    private static Func<List<Piece>, List<Piece>> ByteLevel(bool addPrefixSpace, bool useRegex)
    {
        var gpt2 = TextPattern.FromRegex(Gpt2Split());
        return pieces => pieces
            .Select(p => addPrefixSpace && !p.Text.StartsWith(' ') ? p with { Text = " " + p.Text } : p)
            .SelectMany(p => useRegex ? SplitOne(p, gpt2.Pieces(p.Text), "Isolated", false) : [p])
            .Select(p => p with { Text = ByteLevelAlphabet.Encode(p.Text) })
            .ToList();
    }

    private static Func<List<Piece>, List<Piece>> Metaspace(JsonSpec spec)
    {
        var replacement = spec.String("replacement");
        // Older files say add_prefix_space; newer ones prepend_scheme (always, first or never).
        var scheme = spec.OptionalString("prepend_scheme") ?? (spec.Bool("add_prefix_space", true) ? "always" : "never");
        if (scheme is not ("always" or "first" or "never")) throw spec.Error($"prepend_scheme '{scheme}' is not always, first or never");
        var split = spec.Bool("split", true);
        var marker = TextPattern.FromLiteral(replacement);
        return pieces => pieces.SelectMany(p =>
        {
            var text = p.Text.Replace(" ", replacement, StringComparison.Ordinal);
            if (!text.StartsWith(replacement, StringComparison.Ordinal) && (scheme == "always" || (scheme == "first" && p.AtStart)))
                text = replacement + text;
            var piece = p with { Text = text };
            return split ? SplitOne(piece, marker.Pieces(text), "MergedWithNext", false) : [piece];
        }).ToList();
    }

    [GeneratedRegex(@"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+", RegexOptions.CultureInvariant)]
    private static partial Regex Gpt2Split();

    [GeneratedRegex(@"\w+|[^\w\s]+", RegexOptions.CultureInvariant)]
    private static partial Regex WordsOrSymbols();

    [GeneratedRegex(@"\s+", RegexOptions.CultureInvariant)]
    private static partial Regex Spaces();
}

/// <summary>GPT-2's byte ↔ printable character table (bytes_to_unicode).</summary>
internal static class ByteLevelAlphabet
{
    private static readonly char[] ByteToChar = Build();
    private static readonly Dictionary<char, byte> CharToByte = ByteToChar.Select((c, b) => (c, (byte)b)).ToDictionary(x => x.c, x => x.Item2);

    private static char[] Build()
    {
        var table = new char[256];
        var next = 256;
        for (var b = 0; b < 256; b++)
            table[b] = b is >= '!' and <= '~' or >= 0xA1 and <= 0xAC or >= 0xAE and <= 0xFF ? (char)b : (char)next++;
        return table;
    }

    public static string Encode(string text)
    {
        var bytes = Encoding.UTF8.GetBytes(text);
        var chars = new char[bytes.Length];
        for (var i = 0; i < bytes.Length; i++) chars[i] = ByteToChar[bytes[i]];
        return new string(chars);
    }

    /// <summary>A token's bytes: its characters mapped back, or, when one is not in the table (an added token), the
    /// token's own UTF-8 bytes, as tokenizers' ByteLevel decoder does.</summary>
    public static byte[] Bytes(string token)
    {
        var bytes = new byte[token.Length];
        for (var i = 0; i < token.Length; i++)
            if (CharToByte.TryGetValue(token[i], out var b)) bytes[i] = b;
            else return Encoding.UTF8.GetBytes(token);
        return bytes;
    }
}
