using PeftDsl.Errors;

namespace PeftDsl.Tokenization.Chat;

/// <summary>Jinja's expression grammar, by its precedence: conditional, or, and, not, comparison, ~, + -, * / // %,
/// unary minus, then postfix (attribute, subscript, call, filter, test) on a primary.</summary>
internal sealed class ExpressionParser
{
    private readonly List<Token> tokens;
    private readonly int line;
    private readonly Func<int, string, PeftDslException> error;
    private int at;

    public ExpressionParser(string source, int line, Func<int, string, PeftDslException> error)
    {
        this.line = line;
        this.error = error;
        tokens = ExpressionLexer.Tokens(source, m => error(line, m));
    }

    private Token Peek => tokens[at];

    public bool AtEnd => Peek.Kind == TokenKind.End;

    private PeftDslException Unexpected() => error(line, $"unexpected {(Peek.Kind == TokenKind.Operator || Peek.Kind == TokenKind.Name ? $"'{Peek.Text}'" : Peek.Text)}");

    public bool Accept(string op)
    {
        if (Peek.Kind != TokenKind.Operator || Peek.Text != op) return false;
        at++;
        return true;
    }

    public void Expect(string op)
    {
        if (!Accept(op)) throw error(line, $"expected '{op}', found {(Peek.Kind == TokenKind.End ? "the end" : $"'{Peek.Text}'")}");
    }

    public bool AcceptKeyword(string keyword)
    {
        if (Peek.Kind != TokenKind.Name || Peek.Text != keyword) return false;
        at++;
        return true;
    }

    private bool PeekKeyword(string keyword, int offset = 0) =>
        at + offset < tokens.Count && tokens[at + offset] is { Kind: TokenKind.Name } t && t.Text == keyword;

    public void ExpectKeyword(string keyword)
    {
        if (!AcceptKeyword(keyword)) throw error(line, $"expected '{keyword}'");
    }

    public string ExpectName()
    {
        if (Peek.Kind != TokenKind.Name) throw error(line, $"expected a name, found {(Peek.Kind == TokenKind.End ? "the end" : $"'{Peek.Text}'")}");
        return tokens[at++].Text;
    }

    public void ExpectEnd()
    {
        if (!AtEnd) throw Unexpected();
    }

    public Expr ParseExpression()
    {
        var value = ParseOr();
        if (!AcceptKeyword("if")) return value;
        var condition = ParseOr();
        Expr? otherwise = AcceptKeyword("else") ? ParseExpression() : null;
        return new ConditionalExpr(condition, value, otherwise);
    }

    public Expr ParseOr()
    {
        var left = ParseAnd();
        while (AcceptKeyword("or")) left = new BinaryExpr("or", left, ParseAnd());
        return left;
    }

    private Expr ParseAnd()
    {
        var left = ParseNot();
        while (AcceptKeyword("and")) left = new BinaryExpr("and", left, ParseNot());
        return left;
    }

    private Expr ParseNot() => AcceptKeyword("not") ? new UnaryExpr("not", ParseNot()) : ParseCompare();

    private Expr ParseCompare()
    {
        var left = ParseConcat();
        while (true)
        {
            if (Peek.Kind == TokenKind.Operator && Peek.Text is "==" or "!=" or "<" or ">" or "<=" or ">=")
            {
                var op = tokens[at++].Text;
                left = new BinaryExpr(op, left, ParseConcat());
            }
            else if (AcceptKeyword("in")) left = new BinaryExpr("in", left, ParseConcat());
            else if (PeekKeyword("not") && PeekKeyword("in", 1))
            {
                at += 2;
                left = new BinaryExpr("not in", left, ParseConcat());
            }
            else return left;
        }
    }

    private Expr ParseConcat()
    {
        var left = ParseAdd();
        while (Accept("~")) left = new BinaryExpr("~", left, ParseAdd());
        return left;
    }

    private Expr ParseAdd()
    {
        var left = ParseMul();
        while (Peek.Kind == TokenKind.Operator && Peek.Text is "+" or "-")
        {
            var op = tokens[at++].Text;
            left = new BinaryExpr(op, left, ParseMul());
        }
        return left;
    }

    private Expr ParseMul()
    {
        var left = ParsePower();
        while (Peek.Kind == TokenKind.Operator && Peek.Text is "*" or "/" or "//" or "%")
        {
            var op = tokens[at++].Text;
            left = new BinaryExpr(op, left, ParsePower());
        }
        return left;
    }

    // Jinja binds ** tighter than * and, unlike Python, to the left and below unary minus: -2 ** 2 is 4.
    private Expr ParsePower()
    {
        var left = ParseUnary();
        while (Accept("**")) left = new BinaryExpr("**", left, ParseUnary());
        return left;
    }

    private Expr ParseUnary()
    {
        if (Accept("-")) return new UnaryExpr("-", ParseUnary());
        if (Accept("+")) return ParseUnary();
        return ParsePostfix(ParsePrimary());
    }

    private Expr ParsePrimary()
    {
        var token = Peek;
        switch (token.Kind)
        {
            case TokenKind.String:
                at++;
                // Adjacent literals join, as in Python.
                var text = (string)token.Value!;
                while (Peek.Kind == TokenKind.String) text += (string)tokens[at++].Value!;
                return new Literal(text);
            case TokenKind.Integer or TokenKind.Float:
                at++;
                return new Literal(token.Value);
            case TokenKind.Name:
                at++;
                return token.Text switch
                {
                    "true" or "True" => new Literal(true),
                    "false" or "False" => new Literal(false),
                    "none" or "None" => new Literal(null),
                    _ => new NameExpr(token.Text),
                };
        }
        if (Accept("("))
        {
            var inner = ParseExpression();
            if (Accept(","))
            {
                // A tuple: a list to a template.
                var items = new List<Expr> { inner };
                while (!Accept(")"))
                {
                    items.Add(ParseExpression());
                    if (!Accept(",")) { Expect(")"); break; }
                }
                return new ListExpr(items);
            }
            Expect(")");
            return inner;
        }
        if (Accept("["))
        {
            var items = new List<Expr>();
            while (!Accept("]"))
            {
                items.Add(ParseExpression());
                if (!Accept(",")) { Expect("]"); break; }
            }
            return new ListExpr(items);
        }
        if (Accept("{"))
        {
            var items = new List<(Expr, Expr)>();
            while (!Accept("}"))
            {
                var key = ParseExpression();
                Expect(":");
                items.Add((key, ParseExpression()));
                if (!Accept(",")) { Expect("}"); break; }
            }
            return new DictExpr(items);
        }
        throw Peek.Kind == TokenKind.End ? error(line, "an expression ends too soon") : Unexpected();
    }

    private Expr ParsePostfix(Expr target)
    {
        while (true)
        {
            if (Accept("."))
            {
                var name = Peek.Kind == TokenKind.Integer ? tokens[at++].Text : ExpectName();
                target = long.TryParse(name, out var index) ? new IndexExpr(target, new Literal(index)) : new AttrExpr(target, name);
            }
            else if (Accept("[")) target = Subscript(target);
            else if (Peek.Kind == TokenKind.Operator && Peek.Text == "(")
            {
                at++;
                var (args, kwargs) = Arguments();
                target = new CallExpr(target, args, kwargs);
            }
            else if (Accept("|"))
            {
                var name = ExpectName();
                var (args, kwargs) = Accept("(") ? Arguments() : ([], []);
                target = new FilterExpr(target, name, args, kwargs);
            }
            else if (AcceptKeyword("is"))
            {
                var negated = AcceptKeyword("not");
                var name = Peek.Kind == TokenKind.Name ? ExpectName() : throw error(line, "expected a test name after 'is'");
                if (name is "none" or "None") name = "none";
                if (name is "true" or "True") name = "true";
                if (name is "false" or "False") name = "false";
                var args = new List<Expr>();
                if (Accept("(")) args = Arguments().Args;
                else if (Peek.Kind is TokenKind.String or TokenKind.Integer or TokenKind.Float) args.Add(ParsePrimary());
                target = new TestExpr(target, name, negated, args);
            }
            else return target;
        }
    }

    private Expr Subscript(Expr target)
    {
        Expr? start = null, stop = null, step = null;
        if (!(Peek.Kind == TokenKind.Operator && Peek.Text == ":")) start = ParseExpression();
        if (!Accept(":"))
        {
            Expect("]");
            return new IndexExpr(target, start!);
        }
        if (!(Peek.Kind == TokenKind.Operator && Peek.Text is ":" or "]")) stop = ParseExpression();
        if (Accept(":") && !(Peek.Kind == TokenKind.Operator && Peek.Text == "]")) step = ParseExpression();
        Expect("]");
        return new SliceExpr(target, start, stop, step);
    }

    /// <summary>Call arguments after '(' up to ')': positional, then name=value.</summary>
    private (List<Expr> Args, List<(string, Expr)> Kwargs) Arguments()
    {
        var args = new List<Expr>();
        var kwargs = new List<(string, Expr)>();
        while (!Accept(")"))
        {
            if (Peek.Kind == TokenKind.Name && tokens[at + 1] is { Kind: TokenKind.Operator, Text: "=" })
            {
                var name = tokens[at].Text;
                at += 2;
                kwargs.Add((name, ParseExpression()));
            }
            else args.Add(ParseExpression());
            if (!Accept(",")) { Expect(")"); break; }
        }
        return (args, kwargs);
    }
}
