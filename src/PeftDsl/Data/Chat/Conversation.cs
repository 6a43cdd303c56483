using System.Text.Json;
using PeftDsl.Errors;

namespace PeftDsl.Data.Chat;

/// <summary>
/// One training conversation: a JSONL record <c>{"messages": [{"role", "content"}, …]}</c> as TRL and the OpenAI
/// format write it, with optional <c>"tools"</c> (passed to the chat template) and <c>"taskname"</c>.
/// </summary>
/// <param name="Extra">Variables the template sees besides the messages (<c>tools</c>).</param>
/// <param name="Source">Where it came from (<c>file:line</c>), for every error about it.</param>
public sealed record Conversation(string Task, IReadOnlyList<JsonElement> Messages, IReadOnlyDictionary<string, JsonElement> Extra, string Source)
{
    /// <summary>The roles chat templates know. A misspelt role would be rendered as nothing by some templates and as
    /// a turn of its own by others, so it is refused.</summary>
    public static readonly IReadOnlyList<string> Roles = ["system", "developer", "user", "assistant", "tool"];

    /// <summary>Reads a JSONL file of conversations; every bad record is one error naming its line.</summary>
    public static IReadOnlyList<Conversation> Read(string path, string defaultTask = "default")
    {
        var conversations = JsonlDataset.Records(path).Select(r => Parse(r.Root, r.Source, defaultTask)).ToList();
        if (conversations.Count == 0) throw new PeftDslException($"{path}: no conversations (the file is empty or blank)");
        return conversations;
    }

    private static Conversation Parse(JsonElement root, string source, string defaultTask)
    {
        if (root.ValueKind != JsonValueKind.Object) throw new PeftDslException($"{source}: expected a JSON object, got {root.ValueKind}");
        if (!root.TryGetProperty("messages", out var messages))
            throw new PeftDslException($"{source}: no \"messages\"; the file's first record is a conversation, so every record must be one");
        if (messages.ValueKind != JsonValueKind.Array) throw new PeftDslException($"{source}: \"messages\" must be a list of {{\"role\", \"content\"}}");
        if (messages.GetArrayLength() == 0) throw new PeftDslException($"{source}: the conversation is empty (\"messages\" is [])");
        var list = messages.EnumerateArray().ToList();
        for (var k = 0; k < list.Count; k++)
        {
            var message = list[k];
            var at = $"{source}: message {k + 1}";
            if (message.ValueKind != JsonValueKind.Object) throw new PeftDslException($"{at} is not a JSON object");
            if (!message.TryGetProperty("role", out var r) || r.ValueKind != JsonValueKind.String)
                throw new PeftDslException($"{at} has no \"role\" string");
            var role = r.GetString()!;
            if (!Roles.Contains(role))
                throw new PeftDslException($"{at} has the unknown role '{role}' (roles: {string.Join(", ", Roles)})");
            var hasContent = message.TryGetProperty("content", out var content) && content.ValueKind != JsonValueKind.Null;
            var calls = message.TryGetProperty("tool_calls", out var c) && c.ValueKind == JsonValueKind.Array && c.GetArrayLength() > 0;
            if (hasContent ? content.ValueKind != JsonValueKind.String : !(role == "assistant" && calls))
                throw new PeftDslException($"{at} ({role}): \"content\" must be text" + (role == "assistant" ? " (or null, with \"tool_calls\")" : ""));
        }
        if (!list.Any(m => m.GetProperty("role").GetString() == "assistant"))
            throw new PeftDslException($"{source}: the conversation has no assistant turn, so there is nothing to learn");
        var extra = new Dictionary<string, JsonElement>();
        if (root.TryGetProperty("tools", out var tools) && tools.ValueKind != JsonValueKind.Null)
            extra["tools"] = tools.ValueKind == JsonValueKind.Array ? tools : throw new PeftDslException($"{source}: \"tools\" must be a list");
        return new Conversation(JsonlDataset.TaskOf(root, source, defaultTask), list, extra, source);
    }
}
