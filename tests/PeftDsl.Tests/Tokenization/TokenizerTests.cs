using PeftDsl.Errors;
using PeftDsl.Testing;
using PeftDsl.Tokenization;
using Xunit;

namespace PeftDsl.Tests;

/// <summary>Each tokenizer kind against ids from its reference tool (see tests/fixtures/tokenizers/README.md).</summary>
public sealed class TokenizerTests
{
    private static string Data(params string[] parts) => Repo.File(["tests", "fixtures", "tokenizers", .. parts]);

    [Fact]
    public void Gpt2TiktokenDataGivesGpt2Ids()
    {
        using var dir = new TempDir();
        var tokenizer = TokenizerLoader.FromFolder(dir.Path, "gpt2", 50257);
        Assert.Equal(TokenizerKind.Gpt2Tiktoken, tokenizer.Kind);
        Assert.Equal([15496L, 995, 11, 11507, 12, 16814, 3734, 12, 28286, 278, 0],
            tokenizer.Encode("Hello world, parameter-efficient fine-tuning!"));
        Assert.Equal("Hello world", tokenizer.Decode([15496, 995, 50256]));
    }

    [Fact]
    public void Gpt2VocabAndMergesAreUsedWhenPresent()
    {
        using var dir = new TempDir();
        foreach (var f in new[] { "vocab.json", "merges.txt" }) File.Copy(Data("gpt2-bpe", f), dir.File(f));
        var tokenizer = TokenizerLoader.FromFolder(dir.Path, "gpt2", 50257);
        Assert.Equal(TokenizerKind.Gpt2VocabMerges, tokenizer.Kind);
        Assert.Equal([264L, 260], tokenizer.Encode("hello world"));
        Assert.Equal([264L, 33], tokenizer.Encode("hello!"));     // '!' is byte 0x21
        Assert.Equal("hello world", tokenizer.Decode([264, 260, 265]));
    }

    [Fact]
    public void SentencePieceBpeMatchesSpmEncodeWithBos()
    {
        var tokenizer = Load("llama-bpe.model", "tokenizer.model");
        Assert.Equal(TokenizerKind.SentencePieceBpe, tokenizer.Kind);
        Assert.Equal([1L, 357, 395, 358, 367, 323, 356, 367, 366, 383, 344, 293, 262, 347, 337, 36],
            tokenizer.Encode("Hello world, tuning adapters!"));
        Assert.Equal([1L, 357, 93, 358, 379, 325, 357, 198, 194], tokenizer.Encode("Zebra ÿ"));   // byte fallback
        Assert.Equal("Hello world, tuning adapters!", tokenizer.Decode(tokenizer.Encode("Hello world, tuning adapters!")));
        // An id the tokenizer does not have is refused (it used to vanish from the text).
        var e = Assert.Throws<PeftDslException>(() => tokenizer.Decode([357, tokenizer.VocabSize]));
        Assert.Equal($"token id {tokenizer.VocabSize} is not in the tokenizer's vocabulary of {tokenizer.VocabSize} ({tokenizer.Source}), so it has no text", e.Message);
        Assert.Throws<PeftDslException>(() => tokenizer.Decode([-1]));
    }

    [Theory]   // a one-character text: the library's normalizer alone would return nothing at all
    [InlineData("Q", new long[] { 1, 357, 84 })]
    [InlineData(" Q ", new long[] { 1, 357, 84 })]
    [InlineData("a", new long[] { 1, 262 })]
    [InlineData("!", new long[] { 1, 357, 36 })]
    [InlineData("é", new long[] { 1, 357, 198, 172 })]
    public void SentencePieceBpeEncodesOneCharacterLikeSpm(string text, long[] spmIds)
    {
        var tokenizer = Load("llama-bpe.model", "tokenizer.model");
        Assert.Equal(spmIds, tokenizer.Encode(text));
        Assert.Equal(spmIds[1..], tokenizer.EncodePiece(text));
    }

    [Fact]
    public void SentencePieceUnigramMatchesSpmEncodeWithEos()
    {
        var tokenizer = Load("t5-unigram.model", "spiece.model");
        Assert.Equal(TokenizerKind.SentencePieceUnigram, tokenizer.Kind);
        Assert.Equal([4L, 111, 3, 14, 81, 71, 14, 11, 21, 4, 20, 12, 23, 7, 62, 19, 5, 2, 1],
            tokenizer.Encode("Hello world, tuning adapters!"));
        Assert.Equal("Hello world", tokenizer.Decode([0, 4, 111, 3, 14, 81, 71, 14, 11, 1]));
    }

    [Fact]
    public void FolderWithoutATokenizerIsAClearError()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("config.json"), "{}");
        var e = Assert.Throws<PeftDslException>(() => TokenizerLoader.FromFolder(dir.Path, "gpt2", 512));
        Assert.Contains("no usable tokenizer: expected tokenizer.json (Hugging Face), vocab.json + merges.txt", e.Message);
        Assert.Contains("needs a vocabulary of 50257, but config.json has 512", e.Message);
        Assert.Contains("no usable tokenizer", Assert.Throws<PeftDslException>(() => TokenizerLoader.FromFolder(dir.Path, "llama", 32000)).Message);
        // A tokenizer.json is read, and one without a model says so.
        File.WriteAllText(dir.File("tokenizer.json"), "{}");
        Assert.Equal($"{dir.File("tokenizer.json")}: tokenizer: has no \"model\"",
            Assert.Throws<PeftDslException>(() => TokenizerLoader.FromFolder(dir.Path, "llama", 32000)).Message);
        File.WriteAllText(dir.File("tokenizer.json"), "{\"model\": ");
        Assert.StartsWith($"{dir.File("tokenizer.json")}: not valid JSON",
            Assert.Throws<PeftDslException>(() => TokenizerLoader.FromFolder(dir.Path, "llama", 32000)).Message);
    }

    [Fact]
    public void CorruptTokenizerFileNamesTheFile()
    {
        using var dir = new TempDir();
        File.WriteAllBytes(dir.File("spiece.model"), [1, 2, 3, 4, 5, 6, 7, 8, 9]);
        var e = Assert.Throws<PeftDslException>(() => TokenizerLoader.FromFolder(dir.Path, "t5", 512));
        Assert.Contains("spiece.model: not a valid tokenizer file", e.Message);
    }

    private static TextTokenizer Load(string file, string asName)
    {
        var dir = Path.Combine(Path.GetTempPath(), "peftdsl-tok-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            File.Copy(Data(file), Path.Combine(dir, asName));
            return TokenizerLoader.FromFolder(dir, null, 1000);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
