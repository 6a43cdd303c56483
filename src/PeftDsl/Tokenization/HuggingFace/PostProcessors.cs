namespace PeftDsl.Tokenization.HuggingFace;

/// <summary>tokenizer.json's <c>post_processor</c> for one sequence: the special ids put before and after it when
/// special tokens are added (Llama 3's and Gemma's BOS). ByteLevel's only changes offsets, so it adds nothing here.</summary>
internal sealed record PostProcessor(long[] Before, long[] After)
{
    private const string Supported = "TemplateProcessing, ByteLevel, BertProcessing, RobertaProcessing, Sequence";

    public static readonly PostProcessor None = new([], []);

    public static PostProcessor Read(JsonSpec spec) => spec.Type switch
    {
        "TemplateProcessing" => Template(spec),
        "ByteLevel" => None,
        "BertProcessing" or "RobertaProcessing" => new([Id(spec, "cls")], [Id(spec, "sep")]),
        // Each processor wraps what the ones before it produced, so the last one's tokens are outermost.
        "Sequence" => spec.Items("processors").Select(Read).Aggregate(None, (a, b) => new([.. b.Before, .. a.Before], [.. a.After, .. b.After])),
        _ => throw spec.Unsupported(Supported),
    };

    // ["[CLS]", 101]
    private static long Id(JsonSpec spec, string name)
    {
        var pair = spec.Child(name);
        return pair.Element.ValueKind == System.Text.Json.JsonValueKind.Array && pair.Element.GetArrayLength() == 2
            ? new JsonSpec(pair.Element[1], pair.File, pair.Where).AsId()
            : throw pair.Error("is not [token, id]");
    }

    /// <summary>The "single" template: special tokens around the one sequence "A", each expanded to its ids.</summary>
    private static PostProcessor Template(JsonSpec spec)
    {
        var specials = spec.Child("special_tokens");
        var before = new List<long>();
        var after = new List<long>();
        var seenSequence = false;
        foreach (var item in spec.Items("single"))
        {
            if (item.Has("Sequence"))
            {
                if (seenSequence) throw item.Error("a single-sequence template holds the sequence twice");
                seenSequence = true;
                continue;
            }
            if (!item.Has("SpecialToken")) throw item.Error("is neither {\"SpecialToken\": …} nor {\"Sequence\": …}");
            var name = item.Child("SpecialToken").String("id");
            if (!specials.Has(name)) throw specials.Error($"has no entry for '{name}', which the template uses");
            var ids = specials.Child(name).Items("ids").Select(i => i.AsId());
            (seenSequence ? after : before).AddRange(ids);
        }
        if (!seenSequence) throw spec.Error("the single-sequence template has no {\"Sequence\": …}");
        return new([.. before], [.. after]);
    }
}
