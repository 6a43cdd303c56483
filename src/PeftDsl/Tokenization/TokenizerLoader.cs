using Microsoft.ML.Tokenizers;
using PeftDsl.Errors;

namespace PeftDsl.Tokenization;

/// <summary>Chooses a tokenizer from what a checkpoint folder holds; never guesses one that does not fit.</summary>
public static class TokenizerLoader
{
    /// <summary>GPT-2's vocabulary size; tiktoken's gpt2 data only fits a model with at least this many entries.</summary>
    public const long Gpt2VocabSize = 50257;

    /// <param name="modelType">config.json's model_type, used only to allow tiktoken's gpt2 data for GPT-2.</param>
    /// <param name="vocabSize">The model's vocabulary size, to refuse GPT-2's data for a model it cannot fit.</param>
    public static TextTokenizer FromFolder(string directory, string? modelType, long vocabSize)
    {
        if (!Directory.Exists(directory))
            throw new PeftDslException(File.Exists(directory)
                ? $"{directory}: is a file; give the folder that holds it (vocab.json + merges.txt, tokenizer.model or spiece.model)"
                : $"{directory}: folder not found");
        string At(string name) => Path.Combine(directory, name);
        // transformers loads the fast tokenizer (tokenizer.json) first when a folder has one. One that uses a component
        // we do not compute (T5's Unigram model and Precompiled normalizer) gives way to the folder's slow tokenizer
        // file, which transformers converted it from; without one it is refused by name. A malformed one is refused.
        if (File.Exists(At("tokenizer.json")))
        {
            try
            {
                return HuggingFaceJson(directory);
            }
            catch (HuggingFace.UnsupportedTokenizerComponentException) when (new[] { "vocab.json", "tokenizer.model", "spiece.model" }.Any(f => File.Exists(At(f))))
            {
            }
        }
        if (File.Exists(At("vocab.json")) && File.Exists(At("merges.txt")))
            return Wrap(At("vocab.json"), () =>
            {
                using var vocab = File.OpenRead(At("vocab.json"));
                using var merges = File.OpenRead(At("merges.txt"));
                var tokenizer = CodeGenTokenizer.Create(vocab, merges, false, false, false);
                // Ids run to the largest one the vocabulary and its added tokens use.
                var size = tokenizer.Vocabulary.Values.DefaultIfEmpty(-1).Max() + 1L;
                return new TextTokenizer(tokenizer, TokenizerKind.Gpt2VocabMerges, At("vocab.json"), size, EndOfText(tokenizer), eos: EndOfText(tokenizer).Cast<long?>().FirstOrDefault());
            });
        if (File.Exists(At("tokenizer.model")))
            return SentencePiece(At("tokenizer.model"), TokenizerKind.SentencePieceBpe, addBos: true, addEos: false);
        if (File.Exists(At("spiece.model")))
            return SentencePiece(At("spiece.model"), TokenizerKind.SentencePieceUnigram, addBos: false, addEos: true);
        if (modelType == "gpt2" && vocabSize >= Gpt2VocabSize)
        {
            var tiktoken = TiktokenTokenizer.CreateForModel("gpt2");
            return new TextTokenizer(tiktoken, TokenizerKind.Gpt2Tiktoken, "tiktoken gpt2 data", Gpt2VocabSize, [Gpt2VocabSize - 1], eos: Gpt2VocabSize - 1);
        }
        var why = $"{directory}: no usable tokenizer: expected tokenizer.json (Hugging Face), vocab.json + merges.txt (GPT-2 BPE), tokenizer.model (SentencePiece BPE, Llama) or spiece.model (SentencePiece Unigram, T5/mT5)";
        if (modelType == "gpt2") why += $"; tiktoken's gpt2 data needs a vocabulary of {Gpt2VocabSize}, but config.json has {vocabSize}";
        throw new PeftDslException(why);
    }

    /// <summary>tokenizer.json, with tokenizer_config.json's EOS (what a trained answer ends with) when it has one.</summary>
    private static TextTokenizer HuggingFaceJson(string directory)
    {
        var tokenizer = HuggingFace.HuggingFaceTokenizer.Load(Path.Combine(directory, "tokenizer.json"));
        var config = HuggingFace.TokenizerConfig.Load(directory, tokenizer);
        return new TextTokenizer(tokenizer, config);
    }

    private static TextTokenizer SentencePiece(string path, TokenizerKind kind, bool addBos, bool addEos) => Wrap(path, () =>
    {
        using var stream = new MemoryStream(SentencePieceModelPatch.WithoutNegativeBos(File.ReadAllBytes(path)));
        var tokenizer = SentencePieceTokenizer.Create(stream, addBos, addEos);
        return new TextTokenizer(tokenizer, kind, path, tokenizer.Vocabulary.Values.DefaultIfEmpty(-1).Max() + 1L,
            (addBos ? [tokenizer.BeginningOfSentenceId] : Array.Empty<int>()).Append(tokenizer.EndOfSentenceId).Select(id => (long)id)
                .Concat(kind == TokenizerKind.SentencePieceUnigram ? [0L] : []),   // T5 pads with id 0
            bos: addBos ? tokenizer.BeginningOfSentenceId : null, eos: tokenizer.EndOfSentenceId);
    });

    private static IEnumerable<long> EndOfText(CodeGenTokenizer tokenizer) =>
        tokenizer.Vocabulary.TryGetValue("<|endoftext|>", out var id) ? [id] : [];

    /// <summary>A file the library cannot parse is an error that names it, not a library stack trace.</summary>
    private static TextTokenizer Wrap(string path, Func<TextTokenizer> load)
    {
        try
        {
            return load();
        }
        catch (Exception e) when (e is not PeftDslException and not OutOfMemoryException)
        {
            throw new PeftDslException($"{path}: not a valid tokenizer file ({e.GetType().Name}: {e.Message})", e);
        }
    }
}
