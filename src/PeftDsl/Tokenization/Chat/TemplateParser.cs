using PeftDsl.Errors;

namespace PeftDsl.Tokenization.Chat;

/// <summary>
/// Parses the Jinja subset chat templates use: <c>if/elif/else</c>, <c>for … in … [if …]</c> (with <c>else</c>,
/// <c>break</c>, <c>continue</c>), <c>set</c> (also <c>ns.attr</c> and blocks), transformers' <c>generation</c>
/// block, macros, and expressions with filters, tests, calls, subscripts and slices. Anything else (includes, imports, call
/// blocks, filter blocks) is refused by name.
/// </summary>
internal sealed class TemplateParser
{
    private readonly List<Segment> segments;
    private readonly string name;
    private int position;
    private int loops;   // for bodies being parsed around the current statement, for break and continue

    private TemplateParser(List<Segment> segments, string name) => (this.segments, this.name) = (segments, name);

    public static List<Node> Parse(string template, string name)
    {
        // As Jinja's lexer: every line break becomes "\n", and one at the very end is dropped (keep_trailing_newline is
        // off in transformers).
        template = template.Replace("\r\n", "\n").Replace('\r', '\n');
        if (template.EndsWith('\n')) template = template[..^1];
        var parser = new TemplateParser(TemplateSegments.Split(template, name), name);
        var body = parser.Block([], out var end);
        if (end is not null) throw parser.Error(end.Value.Line, $"'{end.Value.Keyword}' without an open block");
        TemplateCheck.Run(body, name);
        return body;
    }

    private PeftDslException Error(int line, string message) => new($"{name}: line {line}: {message}");

    /// <summary>Nodes until one of <paramref name="ends"/> (returned in <paramref name="end"/>) or the template's end.</summary>
    private List<Node> Block(string[] ends, out (string Keyword, string Args, int Line)? end)
    {
        var nodes = new List<Node>();
        while (position < segments.Count)
        {
            var segment = segments[position++];
            switch (segment)
            {
                case TextSegment t:
                    nodes.Add(new TextNode(t.Text, t.Line));
                    break;
                case OutputSegment o:
                    nodes.Add(new OutputNode(Expression(o.Source, o.Line), o.Line));
                    break;
                case StatementSegment s:
                    var source = s.Source.Trim();
                    var space = source.IndexOfAny([' ', '\t', '\n', '\r']);
                    var keyword = space < 0 ? source : source[..space];
                    var rest = space < 0 ? "" : source[(space + 1)..].Trim();
                    if (ends.Contains(keyword))
                    {
                        end = (keyword, rest, s.Line);
                        return nodes;
                    }
                    nodes.Add(Statement(keyword, rest, s.Line));
                    break;
            }
        }
        end = null;
        if (ends.Length > 0) throw Error(segments.Count > 0 ? segments[^1].Line : 1, $"a block is never closed (expected {string.Join(" or ", ends.Select(e => $"'{{% {e} %}}'"))})");
        return nodes;
    }

    private Node Statement(string keyword, string rest, int line)
    {
        switch (keyword)
        {
            case "if":
            {
                var branches = new List<(Expr, List<Node>)>();
                var condition = Expression(rest, line);
                List<Node>? otherwise = null;
                while (true)
                {
                    var body = Block(["elif", "else", "endif"], out var end);
                    branches.Add((condition, body));
                    if (end!.Value.Keyword == "elif")
                    {
                        condition = Expression(end.Value.Args, end.Value.Line);
                        continue;
                    }
                    if (end.Value.Keyword == "else") otherwise = Block(["endif"], out _);
                    return new IfNode(branches, otherwise, line);
                }
            }
            case "for":
            {
                var tokens = new ExpressionParser(rest, line, Error);
                var targets = new List<string> { tokens.ExpectName() };
                while (tokens.Accept(",")) targets.Add(tokens.ExpectName());
                tokens.ExpectKeyword("in");
                var iterable = tokens.ParseOr();
                Expr? filter = tokens.AcceptKeyword("if") ? tokens.ParseOr() : null;
                if (tokens.AcceptKeyword("recursive")) throw Error(line, "recursive for loops are not supported");
                tokens.ExpectEnd();
                loops++;
                List<Node> body;
                (string Keyword, string Args, int Line)? end;
                try
                {
                    body = Block(["else", "endfor"], out end);
                }
                finally
                {
                    loops--;
                }
                var otherwise = end!.Value.Keyword == "else" ? Block(["endfor"], out _) : null;
                return new ForNode(targets, iterable, filter, body, otherwise, line);
            }
            case "set":
            {
                var tokens = new ExpressionParser(rest, line, Error);
                var target = tokens.ExpectName();
                string? attribute = tokens.Accept(".") ? tokens.ExpectName() : null;
                if (tokens.AtEnd && attribute is null) return new SetBlockNode(target, Block(["endset"], out _), line);
                tokens.Expect("=");
                var value = tokens.ParseExpression();
                tokens.ExpectEnd();
                return new SetNode(target, attribute, value, line);
            }
            case "macro":
            {
                var tokens = new ExpressionParser(rest, line, Error);
                var macro = tokens.ExpectName();
                var parameters = new List<(string, Expr?)>();
                tokens.Expect("(");
                while (!tokens.Accept(")"))
                {
                    if (parameters.Count > 0) tokens.Expect(",");
                    var parameter = tokens.ExpectName();
                    parameters.Add((parameter, tokens.Accept("=") ? tokens.ParseOr() : null));
                }
                tokens.ExpectEnd();
                // A macro body is not inside the loops around its definition.
                var outer = loops;
                loops = 0;
                try
                {
                    return new MacroNode(macro, parameters, Block(["endmacro"], out _), line);
                }
                finally
                {
                    loops = outer;
                }
            }
            case "generation":
                return new GenerationNode(Block(["endgeneration"], out _), line);
            case "break" or "continue" when loops == 0:
                throw Error(line, $"'{{% {keyword} %}}' outside a for loop");
            case "break":
                return new BreakNode(line);
            case "continue":
                return new ContinueNode(line);
            case "elif" or "else" or "endif" or "endfor" or "endset" or "endmacro" or "endgeneration" or "endraw":
                throw Error(line, $"'{keyword}' without an open block");
            default:
                throw Error(line, $"'{{% {keyword} %}}' is not supported (supported: if, for, set, macro, generation, break, continue, raw)");
        }
    }

    private Expr Expression(string source, int line)
    {
        var parser = new ExpressionParser(source, line, Error);
        var expr = parser.ParseExpression();
        parser.ExpectEnd();
        return expr;
    }
}
