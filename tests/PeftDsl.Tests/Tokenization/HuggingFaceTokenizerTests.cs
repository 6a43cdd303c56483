using System.Text.Json;
using PeftDsl.Errors;
using PeftDsl.Tokenization.HuggingFace;
using PeftDsl.Testing;
using Xunit;

namespace PeftDsl.Tests;

/// <summary>
/// Real tokenizer.json files (Llama 3.1, Qwen3, Gemma 3) against ids and decodes from Hugging Face's own port:
/// every record must match. The files stay in ../shared (their licences do not allow a copy here).
/// </summary>
public sealed class HuggingFaceTokenizerTests
{
    /// <summary>../shared/fixtures/hf-tokenizers, beside the repository.</summary>
    public static string Shared(params string[] parts) => Path.GetFullPath(Path.Combine([Repo.Root(), "..", "shared", "fixtures", "hf-tokenizers", .. parts]));

    public static TheoryData<string> Families() => new(Directory.GetDirectories(Shared()).Select(Path.GetFileName).Order()!);

    [Theory]
    [MemberData(nameof(Families))]
    public void EveryReferenceEncodingAndDecodingMatches(string family)
    {
        var tokenizer = HuggingFaceTokenizer.Load(Shared(family, "tokenizer.json"));
        var failures = new List<string>();
        var checkedRecords = 0;
        foreach (var (line, number) in File.ReadLines(Shared(family, "reference.jsonl")).Select((l, i) => (l, i + 1)))
        {
            var record = JsonDocument.Parse(line).RootElement;
            if (record.GetProperty("kind").GetString() != "encode") continue;
            checkedRecords++;
            var text = record.GetProperty("text").GetString()!;
            var ids = Ids(record, "ids");
            Compare(failures, number, "ids", ids, tokenizer.Encode(text, addSpecialTokens: false));
            Compare(failures, number, "ids_with_special", Ids(record, "ids_with_special"), tokenizer.Encode(text, addSpecialTokens: true));
            var decoded = tokenizer.Decode(ids, skipSpecialTokens: false);
            if (decoded != record.GetProperty("decoded").GetString())
                failures.Add($"line {number} decoded: {JsonSerializer.Serialize(decoded)} != {JsonSerializer.Serialize(record.GetProperty("decoded").GetString())}");
        }
        Assert.True(checkedRecords >= 90, $"only {checkedRecords} encode records");
        Assert.True(failures.Count == 0, $"{failures.Count} mismatches of {checkedRecords} records:\n" + string.Join("\n", failures.Take(12)));
    }

    internal static long[] Ids(JsonElement record, string name) => record.GetProperty(name).EnumerateArray().Select(e => e.GetInt64()).ToArray();

    private static void Compare(List<string> failures, int line, string what, long[] expected, long[] actual)
    {
        if (expected.SequenceEqual(actual)) return;
        var at = expected.Zip(actual).TakeWhile(p => p.First == p.Second).Count();
        failures.Add($"line {line} {what}: first difference at {at}: expected [{string.Join(",", expected.Skip(at).Take(6))}] got [{string.Join(",", actual.Skip(at).Take(6))}]");
    }
}
