using System.Text;
using System.Text.Json;

namespace PeftDsl.Tokenization.HuggingFace;

/// <summary>
/// tokenizer.json's <c>"model": {"type": "BPE"}</c>: a piece's characters merged pair by pair, the lowest-ranked
/// merge first (leftmost among equals), as tokenizers' BPE computes it; byte fallback (<c>&lt;0x41&gt;</c>) and the
/// unknown token for characters the vocabulary lacks; <c>ignore_merges</c> takes a piece that is one token whole.
/// </summary>
internal sealed class BpeModel
{
    private readonly Dictionary<string, int> vocab;
    private readonly Dictionary<(int Left, int Right), (int Rank, int Merged)> merges;
    private readonly int? unk;
    private readonly bool fuseUnk, byteFallback, ignoreMerges;
    private readonly string prefix, suffix;

    public BpeModel(JsonSpec spec)
    {
        if (spec.Number("dropout", 0) is not 0.0)
            throw spec.Error("BPE dropout samples another split on every call; a tokenizer that trains or evaluates must be deterministic");
        vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        var vocabSpec = spec.Child("vocab");
        if (vocabSpec.Element.ValueKind != JsonValueKind.Object) throw vocabSpec.Error("is not an object of token: id");
        foreach (var entry in vocabSpec.Element.EnumerateObject())
            vocab[entry.Name] = entry.Value.ValueKind == JsonValueKind.Number && entry.Value.TryGetInt32(out var id) && id >= 0 ? id : throw vocabSpec.Error($"'{entry.Name}' has no whole-number id");
        Tokens = new Dictionary<int, string>(vocab.Count);
        foreach (var (token, id) in vocab) Tokens[id] = token;
        prefix = spec.OptionalString("continuing_subword_prefix") ?? "";
        suffix = spec.OptionalString("end_of_word_suffix") ?? "";
        merges = new Dictionary<(int, int), (int, int)>();
        var rank = 0;
        foreach (var merge in spec.Items("merges"))
        {
            // tokenizers skips the "#version" header some older merges lists keep.
            if (rank == 0 && merge.Element.ValueKind == JsonValueKind.String && merge.Element.GetString()!.StartsWith("#version", StringComparison.Ordinal)) continue;
            var (left, right) = merge.Element.ValueKind switch
            {
                // Older files write "a b", newer ones ["a", "b"] (tokens may then hold spaces).
                JsonValueKind.String when merge.Element.GetString()!.Split(' ') is [var a, var b] => (a, b),
                JsonValueKind.Array when merge.Element.GetArrayLength() == 2 => (new JsonSpec(merge.Element[0], merge.File, merge.Where).AsString(), new JsonSpec(merge.Element[1], merge.File, merge.Where).AsString()),
                _ => throw merge.Error("is not a pair of tokens"),
            };
            // As tokenizers: the right token loses the prefix's length, whatever it starts with.
            var merged = left + right[Math.Min(prefix.Length, right.Length)..];
            if (!vocab.TryGetValue(left, out var l) || !vocab.TryGetValue(right, out var r) || !vocab.TryGetValue(merged, out var m))
                throw merge.Error($"merges '{left}' and '{right}', which (or whose result) the vocabulary lacks");
            // A pair listed twice keeps its last rank, as tokenizers' map does.
            merges[(l, r)] = (rank++, m);
        }
        var unkToken = spec.OptionalString("unk_token");
        if (unkToken is not null) unk = vocab.TryGetValue(unkToken, out var u) ? u : throw spec.Error($"unk_token '{unkToken}' is not in the vocabulary");
        fuseUnk = spec.Bool("fuse_unk", false);
        byteFallback = spec.Bool("byte_fallback", false);
        ignoreMerges = spec.Bool("ignore_merges", false);
    }

    /// <summary>id → token of the model's vocabulary (added tokens are kept apart).</summary>
    public Dictionary<int, string> Tokens { get; }

    public bool TryGetId(string token, out int id) => vocab.TryGetValue(token, out id);

    public void Encode(string piece, List<long> output)
    {
        if (ignoreMerges && vocab.TryGetValue(piece, out var whole))
        {
            output.Add(whole);
            return;
        }
        var symbols = Symbols(piece);
        var n = symbols.Count;
        // A linked list of symbols and a queue of mergeable pairs by (rank, position): the lowest rank merges first,
        // the leftmost among equals, in O(n log n) (a text without spaces, as Gemma's, is one long piece).
        var next = new int[n];
        var previous = new int[n];
        var alive = new bool[n];
        for (var i = 0; i < n; i++) (next[i], previous[i], alive[i]) = (i + 1 < n ? i + 1 : -1, i - 1, true);
        var queue = new PriorityQueue<int, (int Rank, int Position)>();
        void Offer(int i)
        {
            if (i >= 0 && next[i] >= 0 && merges.TryGetValue((symbols[i], symbols[next[i]]), out var m)) queue.Enqueue(i, (m.Rank, i));
        }
        for (var i = 0; i < n; i++) Offer(i);
        while (queue.TryDequeue(out var i, out var key))
        {
            // A stale entry: the symbol was merged away or its pair changed since it was queued (ranks are unique).
            if (!alive[i] || next[i] < 0 || !merges.TryGetValue((symbols[i], symbols[next[i]]), out var m) || m.Rank != key.Rank) continue;
            var j = next[i];
            symbols[i] = m.Merged;
            alive[j] = false;
            next[i] = next[j];
            if (next[j] >= 0) previous[next[j]] = i;
            Offer(previous[i]);
            Offer(i);
        }
        for (var i = 0; i < n; i++)
            if (alive[i]) output.Add(symbols[i]);
    }

    /// <summary>The piece's characters (code points) as ids, with the subword prefix and word suffix where set.</summary>
    private List<int> Symbols(string piece)
    {
        var symbols = new List<int>(piece.Length);
        var lastWasUnk = false;
        var runes = piece.EnumerateRunes().ToList();
        for (var i = 0; i < runes.Count; i++)
        {
            var text = runes[i].ToString();
            if (i > 0) text = prefix + text;
            if (i == runes.Count - 1) text += suffix;
            if (vocab.TryGetValue(text, out var id))
            {
                symbols.Add(id);
                lastWasUnk = false;
                continue;
            }
            if (byteFallback && FallbackBytes(text) is { } bytes)
            {
                symbols.AddRange(bytes);
                lastWasUnk = false;
                continue;
            }
            // No unknown token: tokenizers drops the character.
            if (unk is not { } u) continue;
            if (!(fuseUnk && lastWasUnk)) symbols.Add(u);
            lastWasUnk = true;
        }
        return symbols;
    }

    /// <summary>The symbol's UTF-8 bytes (prefix and suffix included, as tokenizers) as &lt;0xXX&gt; tokens, or null
    /// when one is missing.</summary>
    private List<int>? FallbackBytes(string symbol)
    {
        var utf8 = Encoding.UTF8.GetBytes(symbol);
        var ids = new List<int>(utf8.Length);
        foreach (var b in utf8)
        {
            if (!vocab.TryGetValue($"<0x{b:X2}>", out var id)) return null;
            ids.Add(id);
        }
        return ids;
    }
}
