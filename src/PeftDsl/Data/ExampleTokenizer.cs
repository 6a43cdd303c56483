using PeftDsl.Errors;
using PeftDsl.Tokenization;

namespace PeftDsl.Data;

/// <summary>
/// Prompt and answer → ids. The prompt is tokenized as the model would see it (Llama: after BOS; T5: ending with
/// EOS), the answer as a piece followed by EOS. An example longer than the limit has its truncation field cut
/// (by tokens, from its end) until it fits; without such a field it is an error naming the line.
/// </summary>
public static class ExampleTokenizer
{
    /// <summary>Tokenizes every example (see the single-example overload), keeping their order.</summary>
    /// <param name="maxLength">Most tokens of prompt plus answer per example; at least 2.</param>
    /// <exception cref="PeftDslException"><paramref name="maxLength"/> is below 2, or an example cannot be made to fit.</exception>
    public static IReadOnlyList<TokenizedExample> Tokenize(IReadOnlyList<Example> examples, TextTokenizer tokenizer, DataFormat format, int maxLength)
    {
        if (maxLength < 2) throw new PeftDslException($"--max-length must be at least 2, got {maxLength}");
        return examples.Select(e => Tokenize(e, tokenizer, format, maxLength)).ToList();
    }

    /// <summary>Tokenizes one example's prompt and answer (and its choices, if any), cutting the format's truncation
    /// field until prompt plus the longest answer fits <paramref name="maxLength"/> tokens.</summary>
    /// <exception cref="PeftDslException">The prompt is empty, or the example is too long and cannot be cut enough; the
    /// message names its source line.</exception>
    public static TokenizedExample Tokenize(Example example, TextTokenizer tokenizer, DataFormat format, int maxLength)
    {
        var choices = example.Choices?.Select(c => AnswerIds(tokenizer, c)).ToArray();
        var answer = choices?[example.Label] ?? AnswerIds(tokenizer, example.Answer);
        TokenizedExample Made(long[] p) => new(example.Task, p, answer, example.Source, choices, example.Label);
        // The longest choice must fit after the prompt, as the answer must.
        var longest = choices?.Max(c => c.Length) ?? answer.Length;
        var prompt = EncodePrompt(tokenizer, format, example.Fields);
        if (prompt.Length == 0) throw new PeftDslException($"{example.Source}: the prompt is empty, so there is nothing to answer");
        if (prompt.Length + longest <= maxLength) return Made(prompt);
        if (format.TruncateField is not { } field)
            throw new PeftDslException($"{example.Source}: the example has {prompt.Length + longest} tokens, more than the maximum length {maxLength}, " +
                                       "and no truncation field is named (--truncate-field) to cut");
        var pieces = tokenizer.EncodePiece(example.Fields[field]);
        var fields = new Dictionary<string, string>(example.Fields);
        // Cutting tokens from the field does not cut exactly as many from the prompt (tokens merge across the
        // field's edges), so cut, re-render and measure until it fits.
        for (var keep = pieces.Length - (prompt.Length + longest - maxLength); keep >= 0; keep--)
        {
            fields[field] = tokenizer.Decode(pieces.Take(keep));
            prompt = EncodePrompt(tokenizer, format, fields);
            if (prompt.Length + longest <= maxLength) return Made(prompt);
        }
        throw new PeftDslException($"{example.Source}: even with \"{field}\" emptied the example has {prompt.Length + longest} tokens, more than the maximum length {maxLength}");
    }

    /// <summary>
    /// The prompt's ids. With NeMo's virtual-prompt markers, the text between markers is tokenized piece by piece (as
    /// NeMo does) and each marker becomes its share of slot ids (<see cref="Peft.Prompts.VirtualTokens.SlotId"/>), with
    /// the family's special tokens around the whole as <see cref="TextTokenizer.Encode"/> puts them.
    /// </summary>
    public static long[] EncodePrompt(TextTokenizer tokenizer, DataFormat format, IReadOnlyDictionary<string, string> fields)
    {
        if (format.VirtualTokenSplits is not { } splits) return tokenizer.Encode(format.Render(fields));
        var pieces = format.RenderAroundMarkers(fields);   // k + 1 pieces around k markers
        var ids = new List<long>();
        if (tokenizer.Bos is { } bos) ids.Add(bos);
        var next = 0;
        for (var i = 0; i < pieces.Count; i++)
        {
            if (pieces[i].Length > 0) ids.AddRange(tokenizer.EncodePiece(pieces[i]));
            if (i < pieces.Count - 1)
                for (var j = 0; j < splits[i]; j++) ids.Add(Peft.Prompts.VirtualTokens.SlotId(next++));
        }
        if (tokenizer.Kind == TokenizerKind.SentencePieceUnigram && tokenizer.Eos is { } eos) ids.Add(eos);
        return [.. ids];
    }

    /// <summary>The answer's ids, ending with EOS (so a trained model learns where an answer stops).</summary>
    public static long[] AnswerIds(TextTokenizer tokenizer, string answer)
    {
        var ids = tokenizer.EncodePiece(answer);
        return tokenizer.Eos is { } eos ? [.. ids, eos] : ids;
    }
}
