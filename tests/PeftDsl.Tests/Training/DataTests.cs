using PeftDsl.Data;
using PeftDsl.Errors;
using PeftDsl.Runtime;
using PeftDsl.Testing;
using PeftDsl.Tokenization;
using Xunit;
using static TorchSharp.torch;

namespace PeftDsl.Tests.Training;

/// <summary>JSONL records, templates, truncation and batches; every bad input names its file and line.</summary>
public sealed class DataTests
{
    internal static TextTokenizer LlamaTokenizer()
    {
        var dir = Path.Combine(Path.GetTempPath(), "peftdsl-llama-tokenizer");
        Directory.CreateDirectory(dir);
        File.Copy(Repo.File("tests", "fixtures", "tokenizers", "llama-bpe.model"), Path.Combine(dir, "tokenizer.model"), overwrite: true);
        return TokenizerLoader.FromFolder(dir, "llama", 512);
    }

    private static string Jsonl(TempDir dir, params string[] lines)
    {
        var path = dir.File("data.jsonl");
        File.WriteAllLines(path, lines);
        return path;
    }

    [Fact]
    public void InputOutputRecordsAndNemoTemplatesWithTasks()
    {
        using var dir = new TempDir();
        var plain = JsonlDataset.Read(Jsonl(dir, """{"input": "2+2=", "output": "4"}""", "", """{"input": "3+3=", "output": 6, "taskname": "sums"}"""), DataFormat.InputOutput);
        Assert.Equal(2, plain.Count);
        Assert.Equal(("default", "2+2=", "4"), (plain[0].Task, plain[0].Fields["input"], plain[0].Answer));
        Assert.Equal(("sums", "6", $"{dir.File("data.jsonl")}:3"), (plain[1].Task, plain[1].Answer, plain[1].Source));

        var format = new DataFormat("Context: {context} Question: {question} Answer:", "answer", "context");
        var nemo = JsonlDataset.Read(Jsonl(dir, """{"taskname": "squad", "context": "Paris is in France.", "question": "Where is Paris?", "answer": "France"}"""), format);
        Assert.Equal("Context: Paris is in France. Question: Where is Paris? Answer:", format.Render(nemo[0].Fields));
        Assert.Equal("squad", nemo[0].Task);
    }

    [Theory]
    [InlineData("{\"input\": \"a\", \"output\": \"b\"}\n{\"input\": \"a\" \"output\": \"b\"}", ":2: not valid JSON at column 15 (")]
    [InlineData("{\"input\": \"a\"}", ":1: no \"output\" (answer field); the record has: input")]
    [InlineData("[1, 2]", ":1: expected a JSON object, got Array")]
    [InlineData("{\"input\": {\"x\": 1}, \"output\": \"b\"}", ":1: \"input\" must be text, got Object")]
    [InlineData("{\"input\": \"a\", \"output\": \"b\", \"taskname\": 3}", ":1: \"taskname\" must be a non-empty string")]
    [InlineData("\n\n", ": no examples (the file is empty or blank)")]
    [InlineData("{\"input\": \"a\", \"output\": \"b\"}\n{\"input\": \"a\", \"output\": \" \"}", ":2: \"output\" (the answer) is empty")]
    public void BadRecordsNameTheFileAndLine(string content, string message)
    {
        using var dir = new TempDir();
        var path = dir.File("data.jsonl");
        File.WriteAllText(path, content);
        var e = Assert.Throws<PeftDslException>(() => JsonlDataset.Read(path, DataFormat.InputOutput));
        Assert.StartsWith(path, e.Message);
        Assert.Contains(message, e.Message);
    }

    [Fact]
    public void InvalidUtf8IsRefusedAtItsLine()
    {
        using var dir = new TempDir();
        var path = dir.File("data.jsonl");
        File.WriteAllBytes(path, [.. "{\"input\": \"a\", \"output\": \"b\"}\n{\"input\": \""u8, 0xC3, 0x28, .. "\", \"output\": \"b\"}\n"u8]);
        var e = Assert.Throws<PeftDslException>(() => JsonlDataset.Read(path, DataFormat.InputOutput));
        Assert.Equal($"{path}:2: not valid UTF-8 (the file must be UTF-8 text)", e.Message);
    }

    [Fact]
    public void AnEmptyPromptIsRefusedWithItsSource()
    {
        using var dir = new TempDir();
        File.Copy(Repo.File("tests", "fixtures", "tokenizers", "gpt2-bpe", "vocab.json"), dir.File("vocab.json"));
        File.Copy(Repo.File("tests", "fixtures", "tokenizers", "gpt2-bpe", "merges.txt"), dir.File("merges.txt"));
        var gpt2 = TokenizerLoader.FromFolder(dir.Path, "gpt2", 50257);
        var example = new Example("t", new Dictionary<string, string> { ["input"] = "" }, "hello", "data.jsonl:4");
        var e = Assert.Throws<PeftDslException>(() => ExampleTokenizer.Tokenize(example, gpt2, DataFormat.InputOutput, 64));
        Assert.Equal("data.jsonl:4: the prompt is empty, so there is nothing to answer", e.Message);
    }

    [Fact]
    public void ATemplateFieldNoRecordHasIsNamed()
    {
        using var dir = new TempDir();
        var path = Jsonl(dir, """{"context": "c", "answer": "a"}""");
        var e = Assert.Throws<PeftDslException>(() => JsonlDataset.Read(path, new DataFormat("{context} {question}", "answer")));
        Assert.Contains(":1: no \"question\" (template field {question})", e.Message);
        Assert.Contains("is not a field of the prompt", Assert.Throws<PeftDslException>(() => new DataFormat("{context}", "answer", "question").Validate()).Message);
        Assert.Contains("names no field", Assert.Throws<PeftDslException>(() => new DataFormat("no fields", "answer").Validate()).Message);
        Assert.Contains("a '{' or '}' that is not part of a {field} (at \"{question A:\")",
            Assert.Throws<PeftDslException>(() => new DataFormat("{context} Q: {question A:", "answer").Validate()).Message);
    }

    [Fact]
    public void LongExamplesAreCutInTheirTruncationFieldOrRefused()
    {
        var tokenizer = LlamaTokenizer();
        var format = new DataFormat("{context} Q: {question} A:", "answer", "context");
        var context = string.Join(" ", Enumerable.Repeat("tuning adapters with low rank", 20));
        var example = new Example("t", new Dictionary<string, string> { ["context"] = context, ["question"] = "what?" }, "yes", "data.jsonl:7");
        var cut = ExampleTokenizer.Tokenize(example, tokenizer, format, 40);
        Assert.True(cut.Length <= 40);
        Assert.Equal(tokenizer.Eos, cut.Answer[^1]);
        Assert.EndsWith(tokenizer.Decode(tokenizer.EncodePiece(" Q: what? A:")).Trim(), tokenizer.Decode(cut.Prompt));

        var e = Assert.Throws<PeftDslException>(() => ExampleTokenizer.Tokenize(example, tokenizer, format with { TruncateField = null }, 40));
        Assert.StartsWith("data.jsonl:7: the example has ", e.Message);
        Assert.Contains("no truncation field is named (--truncate-field)", e.Message);
    }

    [Fact]
    public void CausalBatchesTakeLossOnAnswersOnlyAndSeq2SeqShiftsTheAnswer()
    {
        TokenizedExample[] examples = [new("t", [1, 5, 6], [7, 2], "a:1"), new("t", [1, 9], [4, 4, 2], "a:2")];
        using var causal = Batch.Causal(examples, answerOnly: true, CPU);
        Assert.Equal(new long[] { 1, 5, 6, 7, 2 }, causal.InputIds[0].data<long>().ToArray());
        Assert.Equal(new long[] { -100, -100, -100, 7, 2 }, causal.Labels[0].data<long>().ToArray());
        Assert.Equal(new long[] { -100, -100, 4, 4, 2 }, causal.Labels[1].data<long>().ToArray());
        Assert.Equal(new long[] { 1, 1, 1, 1, 1 }, causal.AttentionMask[1].data<long>().ToArray());
        Assert.Equal(5, causal.LossTokens);
        using var all = Batch.Causal(examples, answerOnly: false, CPU);
        Assert.Equal(4 + 4, all.LossTokens);   // every token but each row's first

        using var s2s = Batch.Seq2Seq(examples, decoderStart: 0, CPU);
        Assert.Equal(new long[] { 1, 5, 6 }, s2s.InputIds[0].data<long>().ToArray());
        Assert.Equal(new long[] { 0, 7, 2 }, s2s.DecoderInputIds![0].data<long>().ToArray());
        Assert.Equal(new long[] { 7, 2, Losses.IgnoreIndex }, s2s.Labels[0].data<long>().ToArray());
        Assert.Equal(5, s2s.LossTokens);
    }

    [Fact]
    public void BatchOrderIsAPermutationFixedBySeedAndEpoch()
    {
        var lengths = Enumerable.Range(0, 103).Select(i => i % 17).ToList();
        var first = BatchOrder.Epoch(lengths, 8, seed: 3, epoch: 0);
        Assert.Equal(Enumerable.Range(0, 103), first.SelectMany(b => b).Order());
        Assert.Equal(first, BatchOrder.Epoch(lengths, 8, seed: 3, epoch: 0));
        Assert.NotEqual(first, BatchOrder.Epoch(lengths, 8, seed: 3, epoch: 1));
        Assert.All(first, b => Assert.InRange(b.Max(i => lengths[i]) - b.Min(i => lengths[i]), 0, 3));   // grouped by length
    }

    /// <summary>NeMo's markers: each becomes its share of slot ids between the pieces, tokenized one by one.</summary>
    [Fact]
    public void VirtualPromptMarkersBecomeSlotIds()
    {
        var tokenizer = LlamaTokenizer();
        var format = new DataFormat("<|VIRTUAL_PROMPT_0|> Q: {q}<|VIRTUAL_PROMPT_1|> A:", AnswerField: "a", VirtualTokenSplits: [2, 3]).Validate().ForVirtualTokens(5);
        var fields = new Dictionary<string, string> { ["q"] = "hello" };
        var ids = ExampleTokenizer.EncodePrompt(tokenizer, format, fields);
        long[] expected = [tokenizer.Bos!.Value, -1, -2, .. tokenizer.EncodePiece(" Q: hello"), -3, -4, -5, .. tokenizer.EncodePiece(" A:")];
        Assert.Equal(expected, ids);
        // A field's text is never a marker.
        var inField = ExampleTokenizer.EncodePrompt(tokenizer, format, new Dictionary<string, string> { ["q"] = "<|VIRTUAL_PROMPT_0|>" });
        Assert.Equal(5, inField.Count(id => id < 0));

        // Slots take no loss; after virtual tokens in front, the first token is a target.
        var example = new TokenizedExample("t", [1, -1, -2, 7], [8, 2], "x:1");
        using var batch = Batch.Causal([example], answerOnly: false, TorchSharp.torch.CPU);
        Assert.Equal([1L, -100, -100, 7, 8, 2], batch.Labels.data<long>().ToArray());
        Assert.Equal(3, batch.LossTokens);
        using var prepended = Batch.Causal([example with { Prompt = [1, 7] }], answerOnly: false, TorchSharp.torch.CPU, firstIsTarget: true);
        Assert.Equal(4, prepended.LossTokens);

        var e = Assert.Throws<PeftDslException>(() => new DataFormat("<|VIRTUAL_PROMPT_0|> {q} <|VIRTUAL_PROMPT_1|>").Validate().ForVirtualTokens(4));
        Assert.Contains("give --virtual-token-splits", e.Message);
        e = Assert.Throws<PeftDslException>(() => new DataFormat("<|VIRTUAL_PROMPT_1|> {q}").Validate());
        Assert.Contains("marker 1 is <|VIRTUAL_PROMPT_1|>", e.Message);
        e = Assert.Throws<PeftDslException>(() => new DataFormat("<|VIRTUAL_PROMPT_0|> {q}", VirtualTokenSplits: [3]).Validate().ForVirtualTokens(4));
        Assert.Contains("add up to 3, but the task has 4 virtual tokens", e.Message);
    }
}
