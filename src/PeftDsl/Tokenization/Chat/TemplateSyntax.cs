using PeftDsl.Errors;

namespace PeftDsl.Tokenization.Chat;

/// <summary>A piece of a template between tags: text, <c>{{ … }}</c>, <c>{% … %}</c>; comments are dropped.</summary>
internal abstract record Segment(int Line);
internal sealed record TextSegment(string Text, int Line) : Segment(Line);
internal sealed record OutputSegment(string Source, int Line) : Segment(Line);
internal sealed record StatementSegment(string Source, int Line) : Segment(Line);

/// <summary>
/// Cuts a Jinja template into segments with Jinja's whitespace rules as transformers configures them
/// (<c>trim_blocks</c> and <c>lstrip_blocks</c> on): a <c>-</c> inside a tag strips the whitespace beside it; a block
/// or comment tag also takes the newline after it and the indentation before it.
/// </summary>
internal static class TemplateSegments
{
    /// <summary>Where <paramref name="close"/> ends a tag, skipping string literals: Mistral's templates print "}}".</summary>
    private static int CloseOutsideStrings(string template, int from, string close)
    {
        char? quote = null;
        for (var i = from; i < template.Length; i++)
        {
            var c = template[i];
            if (quote is { } q)
            {
                if (c == '\\') i++;
                else if (c == q) quote = null;
            }
            else if (c is '\'' or '"') quote = c;
            else if (string.CompareOrdinal(template, i, close, 0, close.Length) == 0) return i;
        }
        return -1;
    }

    public static List<Segment> Split(string template, string name)
    {
        var raw = new List<(char Kind, string Body, bool StripBefore, bool StripAfter, bool KeepBefore, bool KeepAfter, int Line)>();   // Kind: 't', '{', '%', '#'
        var at = 0;
        var line = 1;
        while (at < template.Length)
        {
            var open = NextOpen(template, at);
            if (open < 0)
            {
                raw.Add(('t', template[at..], false, false, false, false, line));
                break;
            }
            if (open > at) raw.Add(('t', template[at..open], false, false, false, false, line));
            line += Count(template, at, open);
            var kind = template[open + 1];
            var close = kind switch { '{' => "}}", '%' => "%}", _ => "#}" };
            var end = kind == '#' ? template.IndexOf(close, open + 2, StringComparison.Ordinal) : CloseOutsideStrings(template, open + 2, close);
            if (end < 0) throw new PeftDslException($"{name}: line {line}: '{{{kind}' is never closed by '{close}'");
            var body = template[(open + 2)..end];
            var stripBefore = body.StartsWith('-');
            var keepBefore = body.StartsWith('+');
            var stripAfter = body.EndsWith('-') && body.Length > (stripBefore ? 1 : 0);
            var keepAfter = body.EndsWith('+') && body.Length > (keepBefore ? 1 : 0);
            body = body[(stripBefore || keepBefore ? 1 : 0)..^(stripAfter || keepAfter ? 1 : 0)];
            // {% raw %} … {% endraw %}: the text inside is left as it is.
            if (kind == '%' && body.Trim() == "raw")
            {
                var endRaw = System.Text.RegularExpressions.Regex.Match(template[(end + 2)..], @"\{%-?\s*endraw\s*-?%\}");
                if (!endRaw.Success) throw new PeftDslException($"{name}: line {line}: '{{% raw %}}' is never closed");
                raw.Add(('t', template.Substring(end + 2, endRaw.Index), false, false, false, false, line));
                line += Count(template, open, end + 2 + endRaw.Index + endRaw.Length);
                at = end + 2 + endRaw.Index + endRaw.Length;
                continue;
            }
            raw.Add((kind, body, stripBefore, stripAfter, keepBefore, keepAfter, line));
            line += Count(template, open, end + 2);
            at = end + 2;
        }

        // Whitespace control works on the text beside each tag.
        var texts = raw.Select(r => r.Body).ToArray();
        for (var i = 0; i < raw.Count; i++)
        {
            var r = raw[i];
            if (r.Kind == 't') continue;
            var block = r.Kind is '%' or '#';
            if (i > 0 && raw[i - 1].Kind == 't')
            {
                if (r.StripBefore) texts[i - 1] = texts[i - 1].TrimEnd();
                else if (block && !r.KeepBefore) texts[i - 1] = LeftStripBlock(texts[i - 1], StartsLine(raw, i - 1));
            }
            if (i + 1 < raw.Count && raw[i + 1].Kind == 't')
            {
                if (r.StripAfter) texts[i + 1] = texts[i + 1].TrimStart();
                else if (block && !r.KeepAfter) texts[i + 1] = texts[i + 1].StartsWith("\r\n") ? texts[i + 1][2..] : texts[i + 1].StartsWith('\n') ? texts[i + 1][1..] : texts[i + 1];
            }
        }
        var segments = new List<Segment>();
        for (var i = 0; i < raw.Count; i++)
        {
            switch (raw[i].Kind)
            {
                case 't' when texts[i].Length > 0: segments.Add(new TextSegment(texts[i], raw[i].Line)); break;
                case '{': segments.Add(new OutputSegment(texts[i], raw[i].Line)); break;
                case '%': segments.Add(new StatementSegment(texts[i], raw[i].Line)); break;
            }
        }
        return segments;
    }

    /// <summary>Whether text segment <paramref name="j"/> begins a line: it starts the template, or follows a block
    /// tag whose trim_blocks took the line break (Jinja's lexer tracks the same).</summary>
    private static bool StartsLine(List<(char Kind, string Body, bool StripBefore, bool StripAfter, bool KeepBefore, bool KeepAfter, int Line)> raw, int j) =>
        j == 0 || raw[j - 1].Kind is '%' or '#' && !raw[j - 1].KeepAfter && raw[j].Body.StartsWith('\n');

    /// <summary>lstrip_blocks: spaces and tabs between a line's start and a block tag go; a tag that does not start
    /// its line keeps them.</summary>
    private static string LeftStripBlock(string text, bool startsLine)
    {
        var lineStart = text.LastIndexOf('\n') + 1;
        if (lineStart == 0 && !startsLine) return text;
        for (var i = lineStart; i < text.Length; i++)
            if (text[i] is not (' ' or '\t')) return text;
        return text[..lineStart];
    }

    private static int NextOpen(string template, int from)
    {
        for (var i = template.IndexOf('{', from); i >= 0 && i + 1 < template.Length; i = template.IndexOf('{', i + 1))
            if (template[i + 1] is '{' or '%' or '#') return i;
        return -1;
    }

    private static int Count(string text, int from, int to)
    {
        var n = 0;
        for (var i = from; i < to && i < text.Length; i++) if (text[i] == '\n') n++;
        return n;
    }
}
