using System.Text.Json;
using PeftDsl.Errors;

namespace PeftDsl.Tokenization.HuggingFace;

/// <summary>
/// A Hugging Face <c>tokenizer.json</c> (the "fast" tokenizer transformers loads first), computed as the tokenizers
/// library does: added tokens split out, normalizer, pre-tokenizer, BPE model, post-processor; decoding through the
/// decoder chain. Components it does not implement are refused by name when the file is read. docs/tokenizers.md.
/// </summary>
public sealed class HuggingFaceTokenizer
{
    private readonly Func<string, string>? normalizer;
    private readonly Func<List<Piece>, List<Piece>>? preTokenizer;
    private readonly BpeModel model;
    private readonly AddedTokenMatcher raw, normalized;
    private readonly Dictionary<int, AddedToken> addedById;
    private readonly PostProcessor post;
    private readonly Func<List<string>, List<string>>? decoder;

    private HuggingFaceTokenizer(string path, JsonSpec root)
    {
        Source = path;
        normalizer = root.Has("normalizer") ? Normalizers.Read(root.Child("normalizer")) : null;
        preTokenizer = root.Has("pre_tokenizer") ? PreTokenizers.Read(root.Child("pre_tokenizer")) : null;
        var modelSpec = root.Child("model");
        if (modelSpec.Element.ValueKind != JsonValueKind.Object) throw modelSpec.Error("is not an object");
        if (modelSpec.Has("type") && modelSpec.Type != "BPE" || !modelSpec.Has("type") && !modelSpec.Has("merges"))
            throw modelSpec.Has("type") ? modelSpec.Unsupported("BPE") : modelSpec.Error("has neither a \"type\" nor BPE's \"merges\"");
        model = new BpeModel(modelSpec);
        var added = root.Has("added_tokens") ? root.Items("added_tokens").Select(AddedToken.Read).ToList() : [];
        addedById = new Dictionary<int, AddedToken>();
        foreach (var token in added)
        {
            // tokenizers gives an added token that is also a vocabulary entry the vocabulary's id, whatever the file says.
            if (model.TryGetId(token.Content, out var id) && id != token.Id)
                throw root.Error($"added token '{token.Content}' has id {token.Id}, but the vocabulary gives it {id}");
            if (!addedById.TryAdd(token.Id, token))
                throw root.Error($"added tokens '{addedById[token.Id].Content}' and '{token.Content}' share id {token.Id}");
        }
        raw = new AddedTokenMatcher(added.Where(t => !t.Normalized).Select(t => (t.Content, t)));
        // tokenizers matches these in normalized text, so it normalizes their content too ("<x>" → "▁<x>" for Llama 2).
        normalized = new AddedTokenMatcher(added.Where(t => t.Normalized).Select(t => (normalizer is null ? t.Content : normalizer(t.Content), t)));
        post = root.Has("post_processor") ? PostProcessor.Read(root.Child("post_processor")) : PostProcessor.None;
        decoder = root.Has("decoder") ? Decoders.Read(root.Child("decoder")) : null;
        Size = Math.Max(model.Tokens.Keys.DefaultIfEmpty(-1).Max(), addedById.Keys.DefaultIfEmpty(-1).Max()) + 1L;
        SpecialIds = added.Where(t => t.Special).Select(t => (long)t.Id).ToHashSet();
    }

    /// <summary>Reads a tokenizer.json; anything malformed or not implemented is one error naming the file and the
    /// component.</summary>
    public static HuggingFaceTokenizer Load(string path)
    {
        JsonDocument document;
        try
        {
            using var stream = File.OpenRead(path);
            document = JsonDocument.Parse(stream, new JsonDocumentOptions { MaxDepth = 256 });
        }
        catch (JsonException e)
        {
            throw new PeftDslException($"{path}: not valid JSON ({e.Message})", e);
        }
        using (document)
        {
            if (document.RootElement.ValueKind != JsonValueKind.Object) throw new PeftDslException($"{path}: not a tokenizer.json object");
            try
            {
                return new HuggingFaceTokenizer(path, new JsonSpec(document.RootElement, path, "tokenizer"));
            }
            // A shape the checks above did not foresee is still one line naming the file, not a stack trace.
            catch (Exception e) when (e is InvalidOperationException or FormatException or ArgumentException or KeyNotFoundException or IndexOutOfRangeException)
            {
                throw new PeftDslException($"{path}: malformed tokenizer.json ({e.GetType().Name}: {e.Message})", e);
            }
        }
    }

    /// <summary>The tokenizer.json read.</summary>
    public string Source { get; }

    /// <summary>One past the largest id of the vocabulary and the added tokens.</summary>
    public long Size { get; }

    /// <summary>Ids of added tokens marked special (left out by <see cref="Decode"/> when asked to skip them).</summary>
    public IReadOnlySet<long> SpecialIds { get; }

    /// <summary>What the post-processor puts before one sequence (Llama 3: begin_of_text; Gemma: bos).</summary>
    public IReadOnlyList<long> SpecialPrefix => post.Before;

    /// <summary>What the post-processor puts after one sequence (BERT: sep; none of the families here).</summary>
    public IReadOnlyList<long> SpecialSuffix => post.After;

    /// <summary>The id of a token, added or in the vocabulary, or null.</summary>
    public long? TokenId(string token)
    {
        var added = addedById.Values.FirstOrDefault(t => t.Content == token);
        if (added is not null) return added.Id;
        return model.TryGetId(token, out var id) ? id : null;
    }

    /// <summary>transformers' <c>encode(text, add_special_tokens=…)</c>.</summary>
    public long[] Encode(string text, bool addSpecialTokens)
    {
        var ids = new List<long>();
        if (addSpecialTokens) ids.AddRange(post.Before);
        foreach (var (start, end, token) in raw.Split(text))
        {
            if (token is not null)
            {
                ids.Add(token.Id);
                continue;
            }
            var piece = text[start..end];
            if (normalizer is not null) piece = normalizer(piece);
            foreach (var (s, e, inner) in normalized.Split(piece))
            {
                if (inner is not null) ids.Add(inner.Id);
                else EncodeText(new Piece(piece[s..e], start == 0 && s == 0), ids);
            }
        }
        if (addSpecialTokens) ids.AddRange(post.After);
        return [.. ids];
    }

    private void EncodeText(Piece text, List<long> ids)
    {
        var pieces = preTokenizer is null ? [text] : preTokenizer([text]);
        foreach (var piece in pieces) model.Encode(piece.Text, ids);
    }

    /// <summary>transformers' <c>decode(ids, skip_special_tokens=…)</c> (without cleaning up spaces).</summary>
    public string Decode(IEnumerable<long> ids, bool skipSpecialTokens)
    {
        var tokens = new List<string>();
        foreach (var id in ids)
        {
            if (id < 0 || id >= Size)
                throw new PeftDslException($"token id {id} is not in the tokenizer's vocabulary of {Size} ({Source}), so it has no text");
            if (addedById.TryGetValue((int)id, out var added))
            {
                if (!(skipSpecialTokens && added.Special)) tokens.Add(added.Content);
                continue;
            }
            tokens.Add(model.Tokens.TryGetValue((int)id, out var token)
                ? token
                : throw new PeftDslException($"token id {id} is not in the tokenizer's vocabulary of {Size} ({Source}), so it has no text"));
        }
        return decoder is null ? string.Join(' ', tokens) : string.Concat(decoder(tokens));
    }
}
