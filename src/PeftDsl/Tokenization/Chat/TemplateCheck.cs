using PeftDsl.Errors;

namespace PeftDsl.Tokenization.Chat;

/// <summary>
/// Checks a parsed template for filters and tests we do not compute, so that such a template is refused when it is
/// read, not at the record whose messages first reach the branch that uses them. (Methods such as
/// <c>str.split</c> depend on the value's type and are still found only when called.)
/// </summary>
internal static class TemplateCheck
{
    public static void Run(List<Node> nodes, string name)
    {
        foreach (var node in nodes) Check(node, name);
    }

    private static void Check(Node node, string name)
    {
        var (expressions, bodies) = node switch
        {
            OutputNode o => ([o.Value], []),
            IfNode i => (i.Branches.Select(b => b.Condition).ToList(), [.. i.Branches.Select(b => b.Body), i.Else]),
            ForNode f => (new[] { f.Iterable, f.Filter }.OfType<Expr>().ToList(), [f.Body, f.Else]),
            SetNode s => ([s.Value], []),
            SetBlockNode b => ([], [b.Body]),
            MacroNode m => (m.Parameters.Select(p => p.Default).OfType<Expr>().ToList(), [m.Body]),
            GenerationNode g => ([], [g.Body]),
            _ => (new List<Expr>(), new List<List<Node>?>()),
        };
        foreach (var e in expressions) Check(e, node.Line, name);
        foreach (var body in bodies.OfType<List<Node>>()) Run(body, name);
    }

    private static void Check(Expr e, int line, string name)
    {
        if (e is FilterExpr { Name: var filter } && !TemplateBuiltins.FilterNames.Contains(filter))
            throw new PeftDslException($"{name}: line {line}: filter '{filter}' is not supported (supported: {string.Join(", ", TemplateBuiltins.FilterNames.Order())})");
        if (e is TestExpr { Name: var test } && !TemplateBuiltins.TestNames.Contains(test))
            throw new PeftDslException($"{name}: line {line}: test '{test}' is not supported (supported: {string.Join(", ", TemplateBuiltins.TestNames.Order())})");
        IEnumerable<Expr?> children = e switch
        {
            ListExpr l => l.Items.Cast<Expr?>(),
            DictExpr d => d.Items.SelectMany(p => new[] { p.Key, p.Value }),
            AttrExpr a => [a.Target],
            IndexExpr i => [i.Target, i.Index],
            SliceExpr s => new[] { s.Target, s.Start, s.Stop, s.Step },
            CallExpr c => [c.Callee, .. c.Args, .. c.Kwargs.Select(k => k.Value)],
            FilterExpr f => [f.Value, .. f.Args, .. f.Kwargs.Select(k => k.Value)],
            TestExpr t => [t.Value, .. t.Args],
            UnaryExpr u => [u.Operand],
            BinaryExpr b => [b.Left, b.Right],
            ConditionalExpr c => new[] { c.Condition, c.Then, c.Else },
            _ => [],
        };
        foreach (var child in children.OfType<Expr>()) Check(child, line, name);
    }
}
