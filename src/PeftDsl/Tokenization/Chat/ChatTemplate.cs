using System.Text.Json;
using PeftDsl.Errors;

namespace PeftDsl.Tokenization.Chat;

/// <summary>One rendered conversation: the text, and where each <c>{% generation %}</c> block put its text.</summary>
/// <param name="Text">The rendered prompt.</param>
/// <param name="Generations">Character ranges [Start, End) of the assistant's text, when the template marks it.</param>
public sealed record ChatRender(string Text, IReadOnlyList<(int Start, int End)> Generations);

/// <summary>
/// A tokenizer_config.json chat template, rendered as transformers' <c>apply_chat_template</c> does (Jinja with
/// trim_blocks and lstrip_blocks; <c>messages</c>, <c>add_generation_prompt</c>, the special tokens,
/// <c>raise_exception</c>). The template is parsed once, when read: syntax outside the subset real templates use is
/// refused by name then, not halfway through a dataset. docs/chat.md.
/// </summary>
public sealed class ChatTemplate
{
    private readonly List<Node> nodes;
    private readonly string name;

    private ChatTemplate(List<Node> nodes, string name) => (this.nodes, this.name) = (nodes, name);

    /// <summary>Parses <paramref name="template"/>; <paramref name="name"/> (the file, and the template's name) prefixes errors.</summary>
    public static ChatTemplate Parse(string template, string name) => new(TemplateParser.Parse(template, name), name);

    /// <summary>The default chat template of the tokenizer read from <paramref name="directory"/> (chat_template.jinja,
    /// or tokenizer_config.json's "chat_template"), named after the file it came from; one line when it has none.</summary>
    public static ChatTemplate Of(TextTokenizer tokenizer, string directory)
    {
        var jinja = Path.Combine(directory, "chat_template.jinja");
        var source = File.Exists(jinja) ? jinja : Path.Combine(directory, "tokenizer_config.json") + ": chat_template";
        return tokenizer.Config?.ChatTemplate is { } text
            ? Parse(text, source)
            : throw new PeftDslException($"{directory}: the tokenizer has no chat template (no chat_template.jinja, and no \"chat_template\" in tokenizer_config.json); give one with --chat-template FILE");
    }

    /// <summary>Renders <paramref name="messages"/> (a JSON list of {"role", "content", …}, fields passed through
    /// as they are) with the special tokens of <paramref name="config"/> and any <paramref name="extra"/> variables
    /// (tools, enable_thinking…).</summary>
    public ChatRender Render(JsonElement messages, bool addGenerationPrompt, HuggingFace.TokenizerConfig? config = null,
        IReadOnlyDictionary<string, JsonElement>? extra = null)
    {
        if (messages.ValueKind != JsonValueKind.Array) throw new PeftDslException($"{name}: messages must be a list");
        return Render(messages.EnumerateArray().ToList(), addGenerationPrompt, config, extra);
    }

    /// <summary>Renders the conversation <paramref name="messages"/> (or a prefix of one).</summary>
    public ChatRender Render(IReadOnlyList<JsonElement> messages, bool addGenerationPrompt, HuggingFace.TokenizerConfig? config = null,
        IReadOnlyDictionary<string, JsonElement>? extra = null)
    {
        // transformers always passes tools and documents (None when absent), so "tools is not none" is false then.
        var variables = new Dictionary<string, object?> { ["tools"] = null, ["documents"] = null };
        foreach (var (key, value) in extra ?? new Dictionary<string, JsonElement>()) variables[key] = TemplateValues.FromJson(value);
        variables["messages"] = messages.Select(TemplateValues.FromJson).ToList();
        variables["add_generation_prompt"] = addGenerationPrompt;
        variables["bos_token"] = config?.BosToken ?? "";
        variables["eos_token"] = config?.EosToken ?? "";
        if (config?.PadToken is { } pad) variables["pad_token"] = pad;
        var renderer = new TemplateRenderer(name, variables);
        try
        {
            var text = renderer.Render(nodes);
            return new ChatRender(text, renderer.Generations);
        }
        // An operation on values of kinds the checks did not foresee is still one line that names the template.
        catch (Exception e) when (e is InvalidCastException or ArithmeticException or ArgumentException or InvalidOperationException or IndexOutOfRangeException)
        {
            throw renderer.Error($"{e.GetType().Name}: {e.Message}");
        }
    }
}
