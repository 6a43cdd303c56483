using System.Text.Json;
using System.Text.Json.Nodes;
using PeftDsl.Errors;
using PeftDsl.Testing;
using PeftDsl.Tokenization;
using PeftDsl.Tokenization.HuggingFace;
using Xunit;

namespace PeftDsl.Tests;

/// <summary>tokenizer.json pieces the real references do not use (Llama 2 / Mistral's layout: Prepend and Replace,
/// byte fallback, Strip), added-token flags, refusals, and <c>peft tokenize</c>. Expected ids are worked by hand
/// in each test's comment.</summary>
public sealed class TokenizerJsonTests
{
    /// <summary>A Llama 2-style tokenizer: "▁" prepended and for spaces, byte fallback, BOS added, and the decoder
    /// that undoes it all.</summary>
    private static JsonObject Llama2Style() => JsonNode.Parse("""
        {
          "version": "1.0",
          "added_tokens": [
            {"id": 0, "content": "<unk>", "special": true, "lstrip": false, "rstrip": false, "normalized": false, "single_word": false},
            {"id": 1, "content": "<s>", "special": true, "lstrip": false, "rstrip": false, "normalized": false, "single_word": false},
            {"id": 2, "content": "</s>", "special": true, "lstrip": false, "rstrip": false, "normalized": false, "single_word": false}
          ],
          "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": "▁"},
            {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]},
          "pre_tokenizer": null,
          "post_processor": {"type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [],
            "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
          "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
            {"type": "ByteFallback"}, {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
          "model": {"type": "BPE", "dropout": null, "unk_token": "<unk>", "fuse_unk": true, "byte_fallback": true,
            "vocab": {"<unk>": 0, "<s>": 1, "</s>": 2, "<0x21>": 3, "▁": 4, "h": 5, "i": 6, "hi": 7, "▁hi": 8},
            "merges": ["h i", "▁ hi"]}
        }
        """)!.AsObject();

    private static HuggingFaceTokenizer Load(TempDir dir, JsonNode json)
    {
        File.WriteAllText(dir.File("tokenizer.json"), json.ToJsonString());
        return HuggingFaceTokenizer.Load(dir.File("tokenizer.json"));
    }

    [Fact]
    public void PrependReplaceByteFallbackAndStripComputeLlama2sLayout()
    {
        using var dir = new TempDir();
        var tokenizer = Load(dir, Llama2Style());
        // "hi hi!" → "▁hi▁hi!": "!" is not in the vocabulary, so <0x21>; "h i" merges first, then "▁ hi".
        Assert.Equal([8, 8, 3], tokenizer.Encode("hi hi!", addSpecialTokens: false));
        Assert.Equal([1, 8, 8, 3], tokenizer.Encode("hi hi!", addSpecialTokens: true));
        // "▁hi ▁hi <0x21>" → " hi hi!", then Strip takes the one leading space.
        Assert.Equal("hi hi!", tokenizer.Decode([8, 8, 3], skipSpecialTokens: false));
        Assert.Equal("<s> hi", tokenizer.Decode([1, 8], skipSpecialTokens: false));
        Assert.Equal("hi", tokenizer.Decode([1, 8], skipSpecialTokens: true));
        // "▁éé▁hi": "é" has neither a token nor byte tokens (<0xC3>, <0xA9>), so <unk>, and fuse_unk makes the two one.
        Assert.Equal([4, 0, 8], tokenizer.Encode("éé hi", addSpecialTokens: false));
    }

    [Fact]
    public void AddedTokensAreMatchedWholeAndTakeTheSpaceTheyStrip()
    {
        using var dir = new TempDir();
        var json = Llama2Style();
        json["added_tokens"]!.AsArray().Add(JsonNode.Parse("""{"id": 9, "content": "<mask>", "special": true, "lstrip": true, "rstrip": false, "normalized": false, "single_word": false}"""));
        var tokenizer = Load(dir, json);
        // lstrip: the space before <mask> belongs to it, so "hi" alone is "▁hi" (without it, "hi " is "▁hi▁": 8, 4).
        Assert.Equal([8, 9], tokenizer.Encode("hi <mask>", addSpecialTokens: false));
        // A special token in the text is one id, never split, with or without special tokens added.
        Assert.Equal([1, 2, 8], tokenizer.Encode("</s>hi", addSpecialTokens: true));
    }

    [Fact]
    public void NormalizedAddedTokensAreMatchedAsTheirNormalizedText()
    {
        using var dir = new TempDir();
        var json = Llama2Style();
        json["added_tokens"]!.AsArray().Add(JsonNode.Parse("""{"id": 10, "content": "<x>", "special": false, "lstrip": false, "rstrip": false, "normalized": true, "single_word": false}"""));
        var tokenizer = Load(dir, json);
        // tokenizers normalizes the token's content too: "<x>" is matched as "▁<x>", so after a space only.
        Assert.Equal([8, 10], tokenizer.Encode("hi <x>", addSpecialTokens: false));
        Assert.DoesNotContain(10L, tokenizer.Encode("hi<x>", addSpecialTokens: false));
    }

    [Fact]
    public void LaterPostProcessorsWrapEarlierOnesAndMetaspaceDecodes()
    {
        using var dir = new TempDir();
        var json = Llama2Style();
        json["post_processor"] = JsonNode.Parse("""
            {"type": "Sequence", "processors": [
              {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}], "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
              {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "</s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}], "special_tokens": {"</s>": {"id": "</s>", "ids": [2], "tokens": ["</s>"]}}}]}
            """);
        // Metaspace's decoder: in the first token every "▁" goes (tokenizers' rule), elsewhere each is a space.
        json["decoder"] = JsonNode.Parse("""{"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": true}""");
        var tokenizer = Load(dir, json);
        Assert.Equal([2, 1, 8], tokenizer.Encode("hi", addSpecialTokens: true));
        Assert.Equal("hi hi", tokenizer.Decode([8, 8], skipSpecialTokens: false));
        Assert.Equal("h hi", tokenizer.Decode([5, 8], skipSpecialTokens: false));
        Assert.Equal(" hi", tokenizer.Decode([4, 8], skipSpecialTokens: false));
    }

    /// <summary>A character outside the Basic Multilingual Plane is one code point to tokenizers' regexes, not two
    /// surrogates: Llama 3's pattern keeps "😁nice" one piece ([^\r\n\p{L}\p{N}]?\p{L}+), where .NET alone splits it.</summary>
    [Fact]
    public void RegexesSeeCodePoints()
    {
        var llama3 = new System.Text.RegularExpressions.Regex(@"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+");
        Assert.Equal(2, llama3.Matches("😁nice").Count);   // what .NET's Regex alone does
        string[] Split(string text) => TextPattern.FromRegex(llama3).Pieces(text).Select(p => text[p.Start..p.End]).ToArray();
        Assert.Equal(["😁nice"], Split("😁nice"));
        Assert.Equal(["a", " 𝐀b", "!"], Split("a 𝐀b!"));   // 𝐀 is a letter (Lu), b joins it
    }

    [Fact]
    public void ATokenizerJsonWeDoNotComputeGivesWayToTheFoldersSentencePieceFile()
    {
        using var dir = new TempDir();
        var json = Llama2Style();
        json["model"] = JsonNode.Parse("""{"type": "Unigram", "unk_id": 2, "vocab": [["<pad>", 0.0]]}""");
        File.WriteAllText(dir.File("tokenizer.json"), json.ToJsonString());
        var e = Assert.ThrowsAny<PeftDslException>(() => TokenizerLoader.FromFolder(dir.Path, "t5", 32128));
        Assert.Equal($"{dir.File("tokenizer.json")}: tokenizer.model: type 'Unigram' is not supported (supported: BPE)", e.Message);
        // T5 folders ship spiece.model beside it: that one is read, as before tokenizer.json was.
        File.Copy(Repo.File("tests", "fixtures", "tokenizers", "t5-unigram.model"), dir.File("spiece.model"));
        Assert.Equal(TokenizerKind.SentencePieceUnigram, TokenizerLoader.FromFolder(dir.Path, "t5", 32128).Kind);
        // A malformed tokenizer.json is refused even then.
        File.WriteAllText(dir.File("tokenizer.json"), "{\"model\": \"BPE\"}");
        Assert.Equal($"{dir.File("tokenizer.json")}: tokenizer.model: is not an object",
            Assert.ThrowsAny<PeftDslException>(() => TokenizerLoader.FromFolder(dir.Path, "t5", 32128)).Message);
    }

    [Fact]
    public void CleanUpTokenizationSpacesAppliesToDecodeAsInTransformers()
    {
        using var dir = new TempDir();
        Load(dir, Llama2Style());
        File.WriteAllText(dir.File("tokenizer_config.json"), """{"bos_token": "<s>", "eos_token": "</s>", "clean_up_tokenization_spaces": true}""");
        var tokenizer = TokenizerLoader.FromFolder(dir.Path, null, 0);
        // "▁hi ▁ <0x21>" decodes to "hi !"; transformers' clean-up then joins " !".
        Assert.Equal("hi!", tokenizer.Decode([8, 4, 3]));
        Assert.Equal("hi !", tokenizer.DecodeKeepingSpecial([8, 4, 3]));
    }

    [Theory]
    [InlineData("model", "\"BPE\"", "tokenizer.model: is not an object")]
    [InlineData("added_tokens", "[\"<s>\"]", "tokenizer.added_tokens[0]: is not an object")]
    [InlineData("added_tokens", """[{"id": "5", "content": "<s>"}]""", "tokenizer.added_tokens[0]: \"id\" is not a whole number")]
    [InlineData("added_tokens", """[{"id": 9, "content": "hi"}]""", "added token 'hi' has id 9, but the vocabulary gives it 7")]
    [InlineData("added_tokens", """[{"id": 1, "content": "<s>"}, {"id": 1, "content": "<t>"}]""", "added tokens '<s>' and '<t>' share id 1")]
    [InlineData("normalizer", """{"type": "Replace", "pattern": " ", "content": "▁"}""", "tokenizer.normalizer.pattern: is neither {\"String\": …} nor {\"Regex\": …}")]
    [InlineData("model", """{"type": "BPE", "dropout": "none", "vocab": {}, "merges": []}""", "tokenizer.model: \"dropout\" is not a number")]
    [InlineData("model", """{"type": "BPE", "vocab": {"a": "0"}, "merges": []}""", "tokenizer.model.vocab: 'a' has no whole-number id")]
    [InlineData("model", """{"type": "BPE", "vocab": {"a": 0}, "merges": [["a", 3]]}""", "tokenizer.model.merges[0]: is not a string")]
    public void MalformedFilesAreOneLineNamingTheEntry(string key, string value, string message)
    {
        using var dir = new TempDir();
        var json = Llama2Style();
        json[key] = JsonNode.Parse(value);
        var e = Assert.ThrowsAny<PeftDslException>(() => Load(dir, json));
        Assert.StartsWith(dir.File("tokenizer.json") + ": ", e.Message);
        Assert.Contains(message, e.Message);
    }

    [Theory]
    [InlineData("pre_tokenizer", """{"type": "Punctuation"}""", "tokenizer.pre_tokenizer: type 'Punctuation' is not supported (supported: Split, ByteLevel")]
    [InlineData("normalizer", """{"type": "Sequence", "normalizers": [{"type": "BertNormalizer"}]}""", "tokenizer.normalizer.normalizers[0]: type 'BertNormalizer' is not supported")]
    [InlineData("decoder", """{"type": "WordPiece"}""", "tokenizer.decoder: type 'WordPiece' is not supported")]
    [InlineData("post_processor", """{"type": "Nonsense"}""", "tokenizer.post_processor: type 'Nonsense' is not supported")]
    [InlineData("model", """{"type": "Unigram", "vocab": []}""", "tokenizer.model: type 'Unigram' is not supported (supported: BPE)")]
    [InlineData("model", """{"type": "BPE", "vocab": {"a": 0}, "merges": ["a b"]}""", "tokenizer.model.merges[0]: merges 'a' and 'b', which (or whose result) the vocabulary lacks")]
    [InlineData("model", """{"type": "BPE", "dropout": 0.1, "vocab": {"a": 0}, "merges": []}""", "BPE dropout samples another split on every call")]
    [InlineData("pre_tokenizer", """{"type": "Split", "pattern": {"Regex": "("}, "behavior": "Isolated"}""", "tokenizer.pre_tokenizer.pattern: the regex is not one .NET can compile")]
    public void WhatIsNotImplementedIsOneLineNamingTheComponent(string key, string component, string message)
    {
        using var dir = new TempDir();
        var json = Llama2Style();
        json[key] = JsonNode.Parse(component);
        var e = Assert.ThrowsAny<PeftDslException>(() => Load(dir, json));
        Assert.StartsWith(dir.File("tokenizer.json") + ": ", e.Message);
        Assert.Contains(message, e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void AConfigThatContradictsThePostProcessorIsRefused()
    {
        using var dir = new TempDir();
        Load(dir, Llama2Style());
        File.WriteAllText(dir.File("tokenizer_config.json"), """{"bos_token": "<s>", "eos_token": "</s>", "add_bos_token": false}""");
        var e = Assert.ThrowsAny<PeftDslException>(() => TokenizerLoader.FromFolder(dir.Path, null, 0));
        Assert.Equal($"{dir.File("tokenizer_config.json")}: add_bos_token is false, but tokenizer.json's post-processor puts '<s>' first; fix one of the two files", e.Message);
        File.WriteAllText(dir.File("tokenizer_config.json"), """{"bos_token": "<s>", "eos_token": "<eot>"}""");
        e = Assert.ThrowsAny<PeftDslException>(() => TokenizerLoader.FromFolder(dir.Path, null, 0));
        Assert.Contains("eos_token '<eot>' is not a token of", e.Message);
        File.WriteAllText(dir.File("tokenizer_config.json"), """{"bos_token": "<s>", "eos_token": "</s>", "add_bos_token": true}""");
        var tokenizer = TokenizerLoader.FromFolder(dir.Path, null, 0);
        Assert.Equal((1L, 2L), (tokenizer.Bos!.Value, tokenizer.Eos!.Value));
    }

    /// <summary>transformers loads tokenizer.json before tokenizer.model; so do we.</summary>
    [Fact]
    public void AFolderWithTokenizerJsonUsesIt()
    {
        using var dir = new TempDir();
        Load(dir, Llama2Style());
        File.Copy(Repo.File("tests", "fixtures", "tokenizers", "llama-bpe.model"), dir.File("tokenizer.model"));
        var tokenizer = TokenizerLoader.FromFolder(dir.Path, "llama", 32000);
        Assert.Equal(TokenizerKind.HuggingFaceJson, tokenizer.Kind);
        Assert.Equal([1, 8, 8, 3], tokenizer.Encode("hi hi!"));
        Assert.Equal([8, 8, 3], tokenizer.EncodePiece("hi hi!"));
    }

    /// <summary>peft tokenize on a real reference file's text lines gives the reference's ids and decodes.</summary>
    [Fact]
    public void TokenizeCommandReproducesTheReference()
    {
        using var dir = new TempDir();
        var folder = HuggingFaceTokenizerTests.Shared("qwen3");
        var lines = File.ReadLines(Path.Combine(folder, "reference.jsonl")).Where(l => l.Contains("\"kind\":\"encode\"")).ToList();
        File.WriteAllLines(dir.File("in.jsonl"), lines);
        var (code, stdout, stderr) = ParityTests.Peft("tokenize", "--tokenizer", folder, "--input", dir.File("in.jsonl"));
        Assert.True(code == 0, stderr);
        var output = stdout.TrimEnd().Split('\n');
        Assert.Equal(lines.Count, output.Length);
        foreach (var (expected, actual) in lines.Select(l => JsonDocument.Parse(l).RootElement).Zip(output.Select(l => JsonDocument.Parse(l).RootElement)))
        {
            Assert.Equal(HuggingFaceTokenizerTests.Ids(expected, "ids"), HuggingFaceTokenizerTests.Ids(actual, "ids"));
            Assert.Equal(HuggingFaceTokenizerTests.Ids(expected, "ids_with_special"), HuggingFaceTokenizerTests.Ids(actual, "ids_with_special"));
            Assert.Equal(expected.GetProperty("decoded").GetString(), actual.GetProperty("decoded").GetString());
        }
    }

    [Theory]
    [InlineData("{\"text\": \"a\"}\n{broken\n", "in.jsonl:2: not valid JSON")]
    [InlineData("{\"text\": 3}\n", "in.jsonl:1: has neither a string \"text\" nor a \"messages\" list")]
    [InlineData("{\"text\": \"a\"}\n{\"messages\": [{\"role\": \"user\"}], \"add_generation_prompt\": 1}\n", "in.jsonl:2: \"add_generation_prompt\" is not true or false")]
    public void BadTokenizeInputIsOneLineAndWritesNothing(string input, string message)
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("in.jsonl"), input);
        var (code, stdout, stderr) = ParityTests.Peft("tokenize", "--tokenizer", HuggingFaceTokenizerTests.Shared("qwen3"), "--input", dir.File("in.jsonl"));
        Assert.Equal(2, code);
        Assert.Equal("", stdout);
        Assert.Contains(message, Assert.Single(stderr.TrimEnd().Split('\n')));
    }

    [Fact]
    public void TokenizeRendersChatLinesAndNamesTheLineATemplateRefuses()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("in.jsonl"),
            "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}], \"add_generation_prompt\": true}\n" +
            "{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}, {\"role\": \"user\", \"content\": \"b\"}]}\n");
        var (code, stdout, stderr) = ParityTests.Peft("tokenize", "--tokenizer", HuggingFaceTokenizerTests.Shared("gemma3"), "--input", dir.File("in.jsonl"));
        Assert.Equal(2, code);
        Assert.Equal("", stdout);
        var message = Assert.Single(stderr.TrimEnd().Split('\n'));
        Assert.Contains("in.jsonl:2: ", message);
        Assert.Contains("the template refuses the conversation: Conversation roles must alternate user/assistant/user/assistant/...", message);

        File.WriteAllText(dir.File("ok.jsonl"), "{\"messages\": [{\"role\": \"user\", \"content\": \" Hi \"}], \"add_generation_prompt\": true}\n");
        (code, stdout, stderr) = ParityTests.Peft("tokenize", "--tokenizer", HuggingFaceTokenizerTests.Shared("gemma3"), "--input", dir.File("ok.jsonl"));
        Assert.True(code == 0, stderr);
        var result = JsonDocument.Parse(stdout).RootElement;
        Assert.Equal("<bos><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n", result.GetProperty("rendered").GetString());
        Assert.Equal(2, result.GetProperty("ids")[0].GetInt64()); // <bos> is in the render, so it is encoded, not added.
    }
}
