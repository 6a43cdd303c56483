using PeftDsl.Errors;
using PeftDsl.Tokenization;
using PeftDsl.Tokenization.Chat;

namespace PeftDsl.Data.Chat;

/// <summary>
/// A conversation → ids with the assistant's tokens marked (docs/chat.md). The chat template renders the whole
/// conversation, which is encoded as transformers' <c>apply_chat_template(tokenize=True)</c> does (no special tokens
/// added: the template writes them). The assistant's text is found in one of two ways:
/// <list type="bullet">
/// <item>the template's <c>{% generation %}</c> blocks, by transformers' <c>return_assistant_tokens_mask</c> rule
/// (what TRL's <c>assistant_only_loss</c> reads), with token positions from decoding rather than offsets;</item>
/// <item>otherwise, for each assistant message, what the conversation up to it adds to the conversation before it
/// rendered with the generation prompt: the text the model writes after the prompt it is given at inference. This
/// needs a template that renders each shorter conversation as a prefix of the whole; one that does not is refused
/// by message, since its turns cannot be told apart.</item>
/// </list>
/// Tokens are the assistant's when their text overlaps a span (transformers' char_to_token at the span's first and
/// last characters).
/// </summary>
public static class ConversationTokenizer
{
    /// <summary>Tokenizes every conversation, in order.</summary>
    /// <param name="maxLength">Most tokens per conversation; at least 2.</param>
    public static IReadOnlyList<TokenizedExample> Tokenize(IReadOnlyList<Conversation> conversations, TextTokenizer tokenizer, ChatTemplate template, int maxLength)
    {
        if (maxLength < 2) throw new PeftDslException($"--max-length must be at least 2, got {maxLength}");
        return conversations.Select(c => Tokenize(c, tokenizer, template, maxLength)).ToList();
    }

    /// <summary>The conversation's ids, split before the last assistant turn (prompt, answer), with every assistant
    /// token marked in <see cref="TokenizedExample.Targets"/>.</summary>
    /// <exception cref="PeftDslException">The template refuses the conversation, cannot mark the assistant's text, or
    /// the conversation is longer than <paramref name="maxLength"/>; the message names the line.</exception>
    public static TokenizedExample Tokenize(Conversation conversation, TextTokenizer tokenizer, ChatTemplate template, int maxLength)
    {
        try
        {
            return Tokenized(conversation, tokenizer, template, maxLength);
        }
        catch (PeftDslException e) when (!e.Message.StartsWith(conversation.Source, StringComparison.Ordinal))
        {
            throw new PeftDslException($"{conversation.Source}: {e.Message}", e);
        }
    }

    private static TokenizedExample Tokenized(Conversation conversation, TextTokenizer tokenizer, ChatTemplate template, int maxLength)
    {
        var render = template.Render(conversation.Messages, addGenerationPrompt: false, tokenizer.Config, conversation.Extra);
        var spans = render.Generations.Count > 0 ? render.Generations : TurnSpans(conversation, tokenizer, template, render.Text);
        var ids = tokenizer.EncodePiece(render.Text);
        if (ids.Length > maxLength)
            throw new PeftDslException($"the conversation has {ids.Length} tokens, more than the maximum length {maxLength} (--max-length)");
        var targets = new bool[ids.Length];
        var positions = new TokenPositions(tokenizer, ids, render.Text);
        foreach (var (start, end) in spans.Where(s => s.End > s.Start))
        {
            var last = positions.TokenAt(end - 1);
            for (var t = positions.TokenAt(start); t <= last; t++) targets[t] = true;
        }
        var first = Array.IndexOf(targets, true);
        if (first < 0) throw new PeftDslException("the assistant's turns render as no text, so there is nothing to learn");
        var from = Array.LastIndexOf(targets, true);
        while (from > 0 && targets[from - 1]) from--;   // the last assistant turn starts here
        return new TokenizedExample(conversation.Task, ids[..from], ids[from..], conversation.Source, Targets: targets);
    }

    /// <summary>For each assistant message: from the end of the conversation before it, rendered with the generation
    /// prompt, to the end of the conversation through it.</summary>
    private static List<(int Start, int End)> TurnSpans(Conversation conversation, TextTokenizer tokenizer, ChatTemplate template, string whole)
    {
        var spans = new List<(int, int)>();
        var messages = conversation.Messages;
        for (var i = 0; i < messages.Count; i++)
        {
            if (messages[i].GetProperty("role").GetString() != "assistant") continue;
            var before = template.Render(messages.Take(i).ToList(), addGenerationPrompt: true, tokenizer.Config, conversation.Extra).Text;
            var through = i == messages.Count - 1 ? whole : template.Render(messages.Take(i + 1).ToList(), addGenerationPrompt: false, tokenizer.Config, conversation.Extra).Text;
            if (!through.StartsWith(before, StringComparison.Ordinal) || !whole.StartsWith(through, StringComparison.Ordinal))
                throw new PeftDslException($"the chat template renders the conversation before message {i + 1} (assistant) differently once more " +
                                           "messages follow, so that turn's text cannot be found; give a template that marks it with " +
                                           "{% generation %} … {% endgeneration %} (--chat-template FILE)");
            spans.Add((before.Length, through.Length));
        }
        return spans;
    }

    /// <summary>transformers' char_to_token for a tokenizer that decodes its ids back to the text: the token whose
    /// text holds a character is the first whose decoded prefix reaches past it. A prefix that ends inside a character
    /// (byte tokens) decodes to replacement characters, which do not count, so the length only grows along the ids
    /// and the search cannot land early; such a character belongs to the token that completes it.</summary>
    private sealed class TokenPositions
    {
        private readonly TextTokenizer tokenizer;
        private readonly long[] ids;
        private readonly string text;

        public TokenPositions(TextTokenizer tokenizer, long[] ids, string text)
        {
            (this.tokenizer, this.ids, this.text) = (tokenizer, ids, text);
            if (tokenizer.DecodeKeepingSpecial(ids) != text)
                throw new PeftDslException($"the tokenizer ({tokenizer.Source}) does not decode the rendered conversation's ids back to its text, " +
                                           "so the assistant's tokens cannot be located");
        }

        public int TokenAt(int character)
        {
            var (low, high) = (0, ids.Length - 1);
            while (low < high)
            {
                var middle = (low + high) / 2;
                if (DecodedLength(middle + 1) > character) high = middle;
                else low = middle + 1;
            }
            return low;
        }

        private int DecodedLength(int tokens)
        {
            var decoded = tokenizer.DecodeKeepingSpecial(ids[..tokens]);
            var length = decoded.Length;
            while (length > 0 && decoded[length - 1] == '\uFFFD' && (length > text.Length || text[length - 1] != '\uFFFD')) length--;
            return length;
        }
    }
}
