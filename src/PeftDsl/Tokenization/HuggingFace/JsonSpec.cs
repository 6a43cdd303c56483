using System.Text.Json;
using PeftDsl.Errors;

namespace PeftDsl.Tokenization.HuggingFace;

/// <summary>
/// One object of tokenizer.json and where it sits (<c>pre_tokenizer.pretokenizers[1]</c>), so that every complaint
/// names the file and the component.
/// </summary>
internal readonly record struct JsonSpec(JsonElement Element, string File, string Where)
{
    public PeftDslException Error(string message) => new($"{File}: {Where}: {message}");

    public string Type => Element.ValueKind == JsonValueKind.Object && Element.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String
        ? t.GetString()!
        : throw Error("has no \"type\"");

    public PeftDslException Unsupported(string supported) =>
        new UnsupportedTokenizerComponentException($"{File}: {Where}: type '{Type}' is not supported (supported: {supported})");

    public bool Has(string name) =>
        Element.ValueKind == JsonValueKind.Object && Element.TryGetProperty(name, out var v) && v.ValueKind is not JsonValueKind.Null and not JsonValueKind.Undefined;

    public JsonSpec Child(string name) =>
        Element.ValueKind != JsonValueKind.Object ? throw Error($"is not an object (looking for \"{name}\")")
        : Element.TryGetProperty(name, out var v) ? new(v, File, $"{Where}.{name}") : throw Error($"has no \"{name}\"");

    public IEnumerable<JsonSpec> Items(string name)
    {
        var list = Child(name);
        if (list.Element.ValueKind != JsonValueKind.Array) throw list.Error("is not a list");
        var i = 0;
        foreach (var item in list.Element.EnumerateArray()) yield return new(item, File, $"{Where}.{name}[{i++}]");
    }

    public string String(string name) => Child(name).Element is { ValueKind: JsonValueKind.String } v ? v.GetString()! : throw Error($"\"{name}\" is not a string");

    public string? OptionalString(string name) => Has(name) ? String(name) : null;

    public bool Bool(string name, bool fallback) => !Has(name) ? fallback
        : Child(name).Element.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw Error($"\"{name}\" is not true or false"),
        };

    public int Int(string name, int fallback) => !Has(name) ? fallback
        : Child(name).Element is { ValueKind: JsonValueKind.Number } e && e.TryGetInt32(out var v) ? v : throw Error($"\"{name}\" is not a whole number");

    public double Number(string name, double fallback) => !Has(name) ? fallback
        : Child(name).Element is { ValueKind: JsonValueKind.Number } e ? e.GetDouble() : throw Error($"\"{name}\" is not a number");

    /// <summary>This element as a string (a list item, a pair's half).</summary>
    public string AsString() => Element.ValueKind == JsonValueKind.String ? Element.GetString()! : throw Error("is not a string");

    /// <summary>This element as an id.</summary>
    public long AsId() => Element is { ValueKind: JsonValueKind.Number } && Element.TryGetInt64(out var id) && id >= 0 ? id : throw Error("is not a token id");
}

/// <summary>A well-formed tokenizer.json that uses a component we do not compute (a Unigram model, a Precompiled
/// normalizer): a folder that also has a file of another kind may use that instead.</summary>
public sealed class UnsupportedTokenizerComponentException(string message) : PeftDslException(message);
