using System.Text.Json;
using PeftDsl.Errors;

namespace PeftDsl.Tokenization.Chat;

/// <summary>
/// A user message as the model's chat prompt: the template rendered with <c>add_generation_prompt</c> and encoded
/// without added special tokens (the template writes them), and the token that ends an assistant turn, where
/// generation stops.
/// </summary>
public static class ChatPrompt
{
    /// <summary>The ids of [system?, user <paramref name="message"/>] rendered with the generation prompt.</summary>
    public static long[] Encode(ChatTemplate template, TextTokenizer tokenizer, string message, string? system = null)
    {
        var turns = new List<object>();
        if (system is not null) turns.Add(new { role = "system", content = system });
        turns.Add(new { role = "user", content = message });
        using var document = JsonDocument.Parse(JsonSerializer.Serialize(turns));
        return tokenizer.EncodePiece(template.Render(document.RootElement, addGenerationPrompt: true, tokenizer.Config).Text);
    }

    /// <summary>
    /// The special token the template writes right after an assistant's reply (Qwen's <c>&lt;|im_end|&gt;</c>, Llama 3's
    /// <c>&lt;|eot_id|&gt;</c>, Gemma's <c>&lt;end_of_turn&gt;</c>), found by rendering a one-turn conversation; null when
    /// the template writes no special token there.
    /// </summary>
    public static long? EndOfTurn(ChatTemplate template, TextTokenizer tokenizer)
    {
        const string reply = "PEFTDSL_REPLY_7f3a";
        using var document = JsonDocument.Parse($$"""[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "{{reply}}"}]""");
        string text;
        try
        {
            text = template.Render(document.RootElement, addGenerationPrompt: false, tokenizer.Config).Text;
        }
        catch (PeftDslException)
        {
            return null;   // a template that refuses this conversation names no end of turn
        }
        var at = text.LastIndexOf(reply, StringComparison.Ordinal);
        if (at < 0) return null;
        var after = tokenizer.EncodePiece(text[(at + reply.Length)..]);
        // A special token is one that decoding without special tokens leaves out.
        return after.Length > 0 && tokenizer.Decode([after[0]]).Length == 0 && tokenizer.DecodeKeepingSpecial([after[0]]).Length > 0 ? after[0] : null;
    }
}
