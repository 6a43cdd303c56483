using System.Text.Json;
using PeftDsl.Errors;
using PeftDsl.Testing;
using PeftDsl.Tokenization;
using PeftDsl.Tokenization.Chat;
using Xunit;

namespace PeftDsl.Tests;

/// <summary>The real Llama 3.1, Qwen3 and Gemma 3 chat templates against Hugging Face's renders (@huggingface/jinja,
/// the Hub's engine): every render and its ids must match.</summary>
public sealed class ChatTemplateTests
{
    [Theory]
    [MemberData(nameof(HuggingFaceTokenizerTests.Families), MemberType = typeof(HuggingFaceTokenizerTests))]
    public void EveryReferenceRenderMatches(string family)
    {
        var folder = HuggingFaceTokenizerTests.Shared(family);
        var tokenizer = TokenizerLoader.FromFolder(folder, null, 0);
        var template = ChatTemplate.Parse(tokenizer.Config!.ChatTemplate!, "chat_template");
        var failures = new List<string>();
        var checkedRecords = 0;
        foreach (var (line, number) in File.ReadLines(Path.Combine(folder, "reference.jsonl")).Select((l, i) => (l, i + 1)))
        {
            var record = JsonDocument.Parse(line).RootElement;
            if (record.GetProperty("kind").GetString() != "chat") continue;
            checkedRecords++;
            var rendered = template.Render(record.GetProperty("messages"), record.GetProperty("add_generation_prompt").GetBoolean(), tokenizer.Config).Text;
            if (rendered != record.GetProperty("rendered").GetString())
                failures.Add($"line {number}: {JsonSerializer.Serialize(rendered)}\n   != {JsonSerializer.Serialize(record.GetProperty("rendered").GetString())}");
            else if (!tokenizer.EncodePiece(rendered).SequenceEqual(HuggingFaceTokenizerTests.Ids(record, "ids")))
                failures.Add($"line {number}: ids differ");
        }
        Assert.True(checkedRecords >= 10, $"only {checkedRecords} chat records");
        Assert.True(failures.Count == 0, $"{failures.Count} of {checkedRecords} renders differ:\n" + string.Join("\n", failures.Take(6)));
    }
}
