using System.Text.Json;
using PeftDsl.Errors;

namespace PeftDsl.Tokenization.HuggingFace;

/// <summary>
/// What tokenizer_config.json adds to a tokenizer.json: the special tokens by role and the chat template(s). A
/// folder without the file has none of them. A config whose add_bos_token/add_eos_token contradicts what the
/// tokenizer.json's post-processor adds is refused: transformers would rebuild the post-processor for some tokenizer
/// classes and not for others, so either reading could be the wrong one.
/// </summary>
/// <param name="BosToken">bos_token, or null.</param>
/// <param name="EosToken">eos_token: what ends an assistant turn or an answer.</param>
/// <param name="PadToken">pad_token, or null.</param>
/// <param name="EosId">eos_token's id, or null.</param>
/// <param name="ChatTemplates">The chat templates by name (a single template is "default").</param>
/// <param name="CleanUpSpaces">clean_up_tokenization_spaces: transformers' decode then joins " ." to "." and the like.</param>
public sealed record TokenizerConfig(string? BosToken, string? EosToken, string? PadToken, long? EosId, IReadOnlyDictionary<string, string> ChatTemplates,
    bool CleanUpSpaces = false)
{
    /// <summary>transformers' clean_up_tokenization: spaces before punctuation and English contractions removed.</summary>
    public static string CleanUp(string text) => text.Replace(" .", ".").Replace(" ?", "?").Replace(" !", "!").Replace(" ,", ",")
        .Replace(" ' ", "'").Replace(" n't", "n't").Replace(" 'm", "'m").Replace(" 's", "'s").Replace(" 've", "'ve").Replace(" 're", "'re");

    /// <summary>The template transformers uses by default ("default" of a named list, or the one string).</summary>
    public string? ChatTemplate => ChatTemplates.TryGetValue("default", out var t) ? t : null;

    /// <summary>The folder's tokenizer_config.json, checked against <paramref name="tokenizer"/>; empty when absent. A
    /// chat_template.jinja beside it (how transformers 4.50+ saves the template) is the default template, as
    /// transformers reads it.</summary>
    public static TokenizerConfig Load(string directory, HuggingFaceTokenizer tokenizer)
    {
        var config = LoadJson(directory, tokenizer);
        var jinja = Path.Combine(directory, "chat_template.jinja");
        if (!File.Exists(jinja)) return config;
        var templates = new Dictionary<string, string>(config.ChatTemplates) { ["default"] = File.ReadAllText(jinja) };
        return config with { ChatTemplates = templates };
    }

    private static TokenizerConfig LoadJson(string directory, HuggingFaceTokenizer tokenizer)
    {
        var path = Path.Combine(directory, "tokenizer_config.json");
        if (!File.Exists(path)) return new(null, null, null, null, new Dictionary<string, string>());
        JsonElement root;
        try
        {
            using var document = JsonDocument.Parse(File.ReadAllBytes(path));
            root = document.RootElement.Clone();
        }
        catch (JsonException e)
        {
            throw new PeftDslException($"{path}: not valid JSON ({e.Message})", e);
        }
        if (root.ValueKind != JsonValueKind.Object) throw new PeftDslException($"{path}: not a JSON object");

        string? Token(string key)
        {
            if (!root.TryGetProperty(key, out var v) || v.ValueKind == JsonValueKind.Null) return null;
            if (v.ValueKind == JsonValueKind.String) return v.GetString();
            if (v.ValueKind == JsonValueKind.Object && v.TryGetProperty("content", out var c) && c.ValueKind == JsonValueKind.String) return c.GetString();
            throw new PeftDslException($"{path}: \"{key}\" is neither a token string nor {{\"content\": …}}");
        }
        long? Id(string key, string? token) => token is null ? null
            : tokenizer.TokenId(token) ?? throw new PeftDslException($"{path}: {key} '{token}' is not a token of {tokenizer.Source}");
        bool? Flag(string key) => root.TryGetProperty(key, out var v) ? v.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            JsonValueKind.Null => null,
            _ => throw new PeftDslException($"{path}: \"{key}\" is not true or false"),
        } : null;

        var (bos, eos, pad) = (Token("bos_token"), Token("eos_token"), Token("pad_token"));
        var (bosId, eosId) = (Id("bos_token", bos), Id("eos_token", eos));
        Id("pad_token", pad);
        if (Flag("add_bos_token") is { } addBos && bosId is { } b && addBos != tokenizer.SpecialPrefix.Contains(b))
            throw new PeftDslException($"{path}: add_bos_token is {(addBos ? "true" : "false")}, but tokenizer.json's post-processor " +
                                       $"{(addBos ? "does not put" : "puts")} '{bos}' first; fix one of the two files");
        if (Flag("add_eos_token") is { } addEos && eosId is { } eid && addEos != tokenizer.SpecialSuffix.Contains(eid))
            throw new PeftDslException($"{path}: add_eos_token is {(addEos ? "true" : "false")}, but tokenizer.json's post-processor " +
                                       $"{(addEos ? "does not put" : "puts")} '{eos}' last; fix one of the two files");
        return new(bos, eos, pad, eosId, ChatTemplatesOf(root, path), Flag("clean_up_tokenization_spaces") ?? false);
    }

    /// <summary>chat_template: one string (the default), or a list of {"name", "template"}.</summary>
    private static Dictionary<string, string> ChatTemplatesOf(JsonElement root, string path)
    {
        var templates = new Dictionary<string, string>();
        if (!root.TryGetProperty("chat_template", out var value) || value.ValueKind == JsonValueKind.Null) return templates;
        if (value.ValueKind == JsonValueKind.String)
        {
            templates["default"] = value.GetString()!;
            return templates;
        }
        if (value.ValueKind != JsonValueKind.Array) throw new PeftDslException($"{path}: chat_template is neither a string nor a list of {{\"name\", \"template\"}}");
        foreach (var item in value.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.Object || !item.TryGetProperty("name", out var n) || n.ValueKind != JsonValueKind.String
                || !item.TryGetProperty("template", out var t) || t.ValueKind != JsonValueKind.String)
                throw new PeftDslException($"{path}: a chat_template entry is not {{\"name\": …, \"template\": …}}");
            templates[n.GetString()!] = t.GetString()!;
        }
        return templates;
    }
}
