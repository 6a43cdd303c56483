using Microsoft.ML.Tokenizers;

namespace PeftDsl.Tokenization;

/// <summary>Which tokenizer a checkpoint folder provided.</summary>
public enum TokenizerKind
{
    /// <summary>GPT-2 byte-level BPE from tiktoken's gpt2 data package.</summary>
    Gpt2Tiktoken,
    /// <summary>GPT-2 byte-level BPE from the folder's vocab.json and merges.txt.</summary>
    Gpt2VocabMerges,
    /// <summary>SentencePiece BPE (Llama's tokenizer.model); encoding adds BOS.</summary>
    SentencePieceBpe,
    /// <summary>SentencePiece Unigram (T5/mT5's spiece.model); encoding appends EOS.</summary>
    SentencePieceUnigram,
    /// <summary>A Hugging Face tokenizer.json (Llama 3, Qwen, Gemma, Mistral…); its post-processor says what encoding adds.</summary>
    HuggingFaceJson,
}

/// <summary>A Microsoft.ML.Tokenizers tokenizer with the special-token conventions of its model family, or a Hugging
/// Face tokenizer.json computed by <see cref="HuggingFace.HuggingFaceTokenizer"/>.</summary>
public sealed class TextTokenizer
{
    private readonly Tokenizer? inner;
    private readonly HuggingFace.HuggingFaceTokenizer? json;
    private readonly HashSet<long> special;

    internal TextTokenizer(Tokenizer inner, TokenizerKind kind, string source, long vocabSize, IEnumerable<long> specialIds, long? bos = null, long? eos = null)
    {
        this.inner = inner;
        VocabSize = vocabSize;
        Kind = kind;
        Source = source;
        special = specialIds.ToHashSet();
        Bos = bos;
        Eos = eos;
    }

    internal TextTokenizer(HuggingFace.HuggingFaceTokenizer json, HuggingFace.TokenizerConfig config)
    {
        Config = config;
        this.json = json;
        VocabSize = json.Size;
        Kind = TokenizerKind.HuggingFaceJson;
        Source = json.Source;
        special = json.SpecialIds.ToHashSet();
        Bos = json.SpecialPrefix is [var first, ..] ? first : null;
        Eos = config.EosId;
    }

    /// <summary>tokenizer_config.json's settings (chat templates, special tokens by role), or null for the other kinds.</summary>
    public HuggingFace.TokenizerConfig? Config { get; }

    /// <summary>The tokenizer.json behind this tokenizer, or null for the other kinds.</summary>
    public HuggingFace.HuggingFaceTokenizer? JsonTokenizer => json;

    /// <summary>The beginning-of-sequence id <see cref="Encode"/> puts first (Llama), or null.</summary>
    public long? Bos { get; }

    /// <summary>The end-of-sequence id: what a trained answer ends with, so generation learns to stop.</summary>
    public long? Eos { get; }

    /// <summary>Which tokenizer the folder provided, and so which special-token conventions apply.</summary>
    public TokenizerKind Kind { get; }

    /// <summary>Ids 0 … VocabSize − 1 decode; others are refused.</summary>
    public long VocabSize { get; }

    /// <summary>The file (or data package) the vocabulary came from.</summary>
    public string Source { get; }

    /// <summary>Text → ids, with the family's special tokens (Llama: BOS first; T5: EOS last).</summary>
    public long[] Encode(string text)
    {
        if (json is not null) return json.Encode(text, addSpecialTokens: true);
        var ids = inner is SentencePieceTokenizer sp && OneCharacterNormalized(sp, text) is { } normalized
            ? sp.EncodeToIds(normalized, sp.AddBeginningOfSentence, sp.AddEndOfSentence, considerPreTokenization: false, considerNormalization: false)
            : inner!.EncodeToIds(text);
        return ids.Select(id => (long)id).ToArray();
    }

    /// <summary>
    /// Microsoft.ML.Tokenizers 2.0.1's SentencePieceNormalizer returns "" when the text is one character once
    /// spaces are trimmed (it tests start == end where it means start &gt; end), so "a" or " Q" would encode to
    /// nothing, not even BOS. For that case only, this builds the string the normalizer means to return.
    /// </summary>
    private static string? OneCharacterNormalized(SentencePieceTokenizer sp, string text)
    {
        if (sp.Normalizer is not SentencePieceNormalizer { RemoveExtraWhiteSpaces: true, SpecialTokens: null } n) return null;
        var trimmed = text.Trim(' ');
        if (trimmed.Length != 1) return null;
        var prefix = n.AddDummyPrefix ? (n.EscapeWhiteSpaces ? "\u2581" : " ") : "";
        return n.TreatWhitespaceAsSuffix ? trimmed + prefix : prefix + trimmed;
    }

    /// <summary>Text → ids with no special token at either end: a piece to join to others.</summary>
    public long[] EncodePiece(string text)
    {
        if (json is not null) return json.Encode(text, addSpecialTokens: false);
        var ids = Encode(text).AsSpan();
        if (Bos is { } bos && ids.Length > 0 && ids[0] == bos) ids = ids[1..];
        if (Kind == TokenizerKind.SentencePieceUnigram && Eos is { } eos && ids.Length > 0 && ids[^1] == eos) ids = ids[..^1];
        return ids.ToArray();
    }

    /// <summary>Ids → text; special tokens (BOS, EOS, padding) are left out. An id the tokenizer does not have is
    /// refused by name (it was dropped silently): text that quietly lacks tokens is not what the model produced.</summary>
    public string Decode(IEnumerable<long> ids)
    {
        var list = ids as IReadOnlyCollection<long> ?? ids.ToList();
        foreach (var id in list)
            if (id < 0 || id >= VocabSize)
                throw new Errors.PeftDslException($"token id {id} is not in the tokenizer's vocabulary of {VocabSize} ({Source}), so it has no text");
        // transformers' decode, clean-up included when the config asks for it (Llama 3.1's does).
        if (json is not null)
            return Config!.CleanUpSpaces ? HuggingFace.TokenizerConfig.CleanUp(json.Decode(list, skipSpecialTokens: true)) : json.Decode(list, skipSpecialTokens: true);
        return inner!.Decode(list.Where(id => !special.Contains(id)).Select(id => (int)id)) ?? "";
    }

    /// <summary>Ids → text with special tokens kept (tokenizer.json: transformers' decode with skip_special_tokens
    /// false; the other kinds: as Microsoft.ML.Tokenizers decodes them).</summary>
    public string DecodeKeepingSpecial(IEnumerable<long> ids)
    {
        var list = ids as IReadOnlyCollection<long> ?? ids.ToList();
        if (json is not null) return json.Decode(list, skipSpecialTokens: false);
        foreach (var id in list)
            if (id < 0 || id >= VocabSize)
                throw new Errors.PeftDslException($"token id {id} is not in the tokenizer's vocabulary of {VocabSize} ({Source}), so it has no text");
        return inner!.Decode(list.Select(id => (int)id)) ?? "";
    }
}
