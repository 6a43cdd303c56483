using System.Text;

namespace PeftDsl.Tokenization.HuggingFace;

/// <summary>tokenizer.json's <c>decoder</c>: token strings → token strings, chained, then joined (tokenizers'
/// decode_chain).</summary>
internal static class Decoders
{
    private const string Supported = "ByteLevel, Replace, ByteFallback, Fuse, Strip, Metaspace, Sequence";

    public static Func<List<string>, List<string>> Read(JsonSpec spec) => spec.Type switch
    {
        "ByteLevel" => ByteLevel,
        "Replace" => Replace(spec),
        "ByteFallback" => ByteFallback,
        "Fuse" => tokens => [string.Concat(tokens)],
        "Strip" => Strip(spec),
        "Metaspace" => Metaspace(spec),
        "Sequence" => Sequence(spec.Items("decoders").Select(Read).ToList()),
        _ => throw spec.Unsupported(Supported),
    };

    private static Func<List<string>, List<string>> Sequence(List<Func<List<string>, List<string>>> steps) =>
        tokens => steps.Aggregate(tokens, (current, step) => step(current));

    /// <summary>Every token's bytes together, read as UTF-8 (invalid bytes become U+FFFD).</summary>
    private static List<string> ByteLevel(List<string> tokens)
    {
        var bytes = tokens.SelectMany(ByteLevelAlphabet.Bytes).ToArray();
        return [Encoding.UTF8.GetString(bytes)];
    }

    private static Func<List<string>, List<string>> Replace(JsonSpec spec)
    {
        var pattern = TextPattern.Read(spec);
        var content = spec.String("content");
        return tokens => tokens.Select(t => pattern.Replace(t, content)).ToList();
    }

    /// <summary>Runs of &lt;0xXX&gt; tokens become the text their bytes spell; a run that is not UTF-8 becomes one
    /// U+FFFD per byte.</summary>
    private static List<string> ByteFallback(List<string> tokens)
    {
        var output = new List<string>(tokens.Count);
        var run = new List<byte>();
        void Flush()
        {
            if (run.Count == 0) return;
            try
            {
                output.Add(new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(run.ToArray()));
            }
            catch (DecoderFallbackException)
            {
                output.AddRange(Enumerable.Repeat("\uFFFD", run.Count));
            }
            run.Clear();
        }
        foreach (var token in tokens)
        {
            if (token.Length == 6 && token.StartsWith("<0x", StringComparison.Ordinal) && token[5] == '>'
                && byte.TryParse(token.AsSpan(3, 2), System.Globalization.NumberStyles.HexNumber, null, out var b))
            {
                run.Add(b);
                continue;
            }
            Flush();
            output.Add(token);
        }
        Flush();
        return output;
    }

    private static Func<List<string>, List<string>> Strip(JsonSpec spec)
    {
        var content = spec.String("content");
        if (content.Length != 1) throw spec.Error($"content '{content}' is not one character");
        var (c, start, stop) = (content[0], spec.Int("start", 0), spec.Int("stop", 0));
        return tokens => tokens.Select(t =>
        {
            var from = 0;
            while (from < start && from < t.Length && t[from] == c) from++;
            var to = t.Length;
            while (t.Length - to < stop && to > from && t[to - 1] == c) to--;
            return t[from..to];
        }).ToList();
    }

    private static Func<List<string>, List<string>> Metaspace(JsonSpec spec)
    {
        var replacement = spec.String("replacement");
        var scheme = spec.OptionalString("prepend_scheme") ?? (spec.Bool("add_prefix_space", true) ? "always" : "never");
        // As tokenizers: in the first token every replacement character is dropped (not only a leading one), unless
        // the scheme never prepended one; elsewhere each becomes a space.
        return tokens => tokens.Select((t, i) =>
            t.Replace(replacement, i == 0 && scheme != "never" ? "" : " ", StringComparison.Ordinal)).ToList();
    }
}
