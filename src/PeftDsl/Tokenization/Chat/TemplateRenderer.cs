using System.Text;
using PeftDsl.Errors;

namespace PeftDsl.Tokenization.Chat;

/// <summary>Runs a parsed template: statements write text, expressions compute values (TemplateValues' rules).
/// A loop body's <c>set</c> stays in the loop, as in Jinja (namespaces carry values out).</summary>
internal sealed class TemplateRenderer
{
    private enum Flow { Normal, Break, Continue }

    private readonly string name;
    private readonly List<Dictionary<string, object?>> scopes;
    private readonly StringBuilder output = new();
    private int line;
    // Macro calls and set blocks render into the output and cut their text out again: a generation span inside one
    // would point at text that is not where the span says.
    private int capturing;
    // Python stops runaway recursion with RecursionError; here a macro that keeps calling itself would overflow the
    // stack and kill the process, so calls are counted.
    private int macroDepth;
    private const int MaxMacroDepth = 100;

    public TemplateRenderer(string name, Dictionary<string, object?> variables)
    {
        this.name = name;
        scopes = [TemplateBuiltins.Globals(this), variables];
    }

    /// <summary>Where each <c>{% generation %}</c> block's text starts and ends in the output.</summary>
    public List<(int Start, int End)> Generations { get; } = [];

    public PeftDslException Error(string message) => new($"{name}: line {line}: {message}");

    public string Render(List<Node> nodes)
    {
        Run(nodes);
        return output.ToString();
    }

    private Flow Run(List<Node> nodes)
    {
        foreach (var node in nodes)
        {
            line = node.Line;
            switch (node)
            {
                case TextNode t:
                    output.Append(t.Text);
                    break;
                case OutputNode o:
                    output.Append(TemplateValues.Print(Strict(Evaluate(o.Value), o.Value, allowUndefined: true)));
                    break;
                case IfNode i:
                    var branch = i.Branches.FirstOrDefault(b => TemplateValues.Truthy(Evaluate(b.Condition))).Body ?? i.Else;
                    if (branch is not null && Run(branch) is var flow and not Flow.Normal) return flow;
                    break;
                case ForNode f:
                    RunFor(f);
                    break;
                case SetNode s when s.Attribute is null:
                    scopes[^1][s.Name] = Evaluate(s.Value);
                    break;
                case SetNode s:
                    if (Lookup(s.Name) is not Namespace ns) throw Error($"'{s.Name}.{s.Attribute}' can be set only on a namespace(), and '{s.Name}' is not one");
                    ns[s.Attribute!] = Evaluate(s.Value);
                    break;
                case SetBlockNode b:
                    scopes[^1][b.Name] = Capture(() => Run(b.Body));
                    break;
                case MacroNode m:
                    scopes[^1][m.Name] = (Callable)((args, kwargs) => CallMacro(m, args, kwargs));
                    break;
                case GenerationNode g:
                    if (capturing > 0) throw Error("'{% generation %}' inside a macro or a set block is not supported");
                    var from = output.Length;
                    var result = Run(g.Body);
                    Generations.Add((from, output.Length));
                    if (result != Flow.Normal) return result;
                    break;
                case BreakNode:
                    return Flow.Break;
                case ContinueNode:
                    return Flow.Continue;
            }
        }
        return Flow.Normal;
    }

    private string Capture(Action body)
    {
        var start = output.Length;
        capturing++;
        try
        {
            body();
            return output.ToString(start, output.Length - start);
        }
        finally
        {
            capturing--;
            output.Length = start;
        }
    }

    private string CallMacro(MacroNode m, List<object?> args, Dictionary<string, object?> kwargs)
    {
        if (args.Count > m.Parameters.Count) throw Error($"macro '{m.Name}' takes {m.Parameters.Count} arguments, given {args.Count}");
        var unknown = kwargs.Keys.FirstOrDefault(k => m.Parameters.All(p => p.Name != k));
        if (unknown is not null) throw Error($"macro '{m.Name}' has no parameter '{unknown}'");
        var locals = new Dictionary<string, object?>();
        for (var i = 0; i < m.Parameters.Count; i++)
        {
            var (parameter, fallback) = m.Parameters[i];
            locals[parameter] = i < args.Count ? args[i]
                : kwargs.TryGetValue(parameter, out var v) ? v
                : fallback is not null ? Evaluate(fallback) : new Undefined(parameter);
        }
        if (macroDepth >= MaxMacroDepth) throw Error($"macro '{m.Name}': macros call each other more than {MaxMacroDepth} deep");
        var saved = line;
        scopes.Add(locals);
        macroDepth++;
        try
        {
            return Capture(() => Run(m.Body));
        }
        finally
        {
            macroDepth--;
            scopes.RemoveAt(scopes.Count - 1);
            line = saved;
        }
    }

    private void RunFor(ForNode f)
    {
        var items = Iterate(Evaluate(f.Iterable), f.Iterable);
        scopes.Add([]);
        try
        {
            if (f.Filter is not null)
                items = items.Where(item => { Bind(f.Targets, item); return TemplateValues.Truthy(Evaluate(f.Filter)); }).ToList();
            for (var i = 0; i < items.Count; i++)
            {
                scopes[^1] = [];   // as Jinja: a set in one iteration is gone in the next
                Bind(f.Targets, items[i]);
                scopes[^1]["loop"] = new Dictionary<string, object?>
                {
                    ["index"] = (long)i + 1, ["index0"] = (long)i, ["revindex"] = (long)(items.Count - i), ["revindex0"] = (long)(items.Count - i - 1),
                    ["first"] = i == 0, ["last"] = i == items.Count - 1, ["length"] = (long)items.Count,
                    ["previtem"] = i > 0 ? items[i - 1] : new Undefined("loop.previtem"),
                    ["nextitem"] = i + 1 < items.Count ? items[i + 1] : new Undefined("loop.nextitem"),
                };
                if (Run(f.Body) == Flow.Break) break;
            }
            if (items.Count == 0 && f.Else is not null) Run(f.Else);
        }
        finally
        {
            scopes.RemoveAt(scopes.Count - 1);
        }
    }

    private void Bind(List<string> targets, object? item)
    {
        if (targets.Count == 1)
        {
            scopes[^1][targets[0]] = item;
            return;
        }
        if (item is not List<object?> parts || parts.Count != targets.Count)
            throw Error($"cannot unpack {TemplateValues.TypeName(item)} into {targets.Count} names ({string.Join(", ", targets)})");
        for (var i = 0; i < targets.Count; i++) scopes[^1][targets[i]] = parts[i];
    }

    public List<object?> Iterate(object? value, Expr? source = null) => value switch
    {
        Undefined => [],
        List<object?> list => list,
        Dictionary<string, object?> dict => dict.Keys.Cast<object?>().ToList(),
        string s => s.EnumerateRunes().Select(r => (object?)r.ToString()).ToList(),
        _ => throw Error($"{TemplateValues.TypeName(value)} is not iterable"),
    };

    private object? Lookup(string variable)
    {
        for (var i = scopes.Count - 1; i >= 0; i--)
            if (scopes[i].TryGetValue(variable, out var value)) return value;
        return new Undefined(variable);
    }

    /// <summary>An undefined value used for anything but printing, testing or truth is an error naming it.</summary>
    private object? Strict(object? value, Expr expr, bool allowUndefined = false) =>
        value is Undefined u && !allowUndefined ? throw Error($"'{u.Name}' is undefined") : value;

    public object? Evaluate(Expr expr)
    {
        switch (expr)
        {
            case Literal l:
                return l.Value;
            case NameExpr n:
                return Lookup(n.Name);
            case ListExpr l:
                return l.Items.Select(Evaluate).ToList();
            case DictExpr d:
                var dict = new Dictionary<string, object?>();
                foreach (var (k, v) in d.Items) dict[TemplateValues.Print(Evaluate(k))] = Evaluate(v);
                return dict;
            case AttrExpr a:
                return TemplateBuiltins.Attribute(this, Strict(Evaluate(a.Target), a.Target), a.Name, Describe(a));
            case IndexExpr i:
                return TemplateBuiltins.Index(this, Strict(Evaluate(i.Target), i.Target), Evaluate(i.Index), Describe(i));
            case SliceExpr s:
                return TemplateBuiltins.Slice(this, Strict(Evaluate(s.Target), s.Target), Int(s.Start), Int(s.Stop), Int(s.Step));
            case CallExpr c:
                var callee = Strict(Evaluate(c.Callee), c.Callee) as Callable ?? throw Error($"{Describe(c.Callee)} is not a function");
                return callee(c.Args.Select(Evaluate).ToList(), c.Kwargs.ToDictionary(k => k.Name, k => Evaluate(k.Value)));
            case FilterExpr f:
                return TemplateBuiltins.Filter(this, f.Name, Evaluate(f.Value), f.Args.Select(Evaluate).ToList(),
                    f.Kwargs.ToDictionary(k => k.Name, k => Evaluate(k.Value)));
            case TestExpr t:
                return TemplateBuiltins.Test(this, t.Name, Evaluate(t.Value), t.Args.Select(Evaluate).ToList()) != t.Negated;
            case UnaryExpr { Op: "not" } u:
                return !TemplateValues.Truthy(Evaluate(u.Operand));
            case UnaryExpr u:
                return Strict(Evaluate(u.Operand), u.Operand) switch
                {
                    long l => (object)(-l),
                    double d => (object)(-d),
                    var v => throw Error($"cannot negate {TemplateValues.TypeName(v)}"),
                };
            case BinaryExpr { Op: "and" } b:
                var left = Evaluate(b.Left);
                return TemplateValues.Truthy(left) ? Evaluate(b.Right) : left;
            case BinaryExpr { Op: "or" } b:
                var first = Evaluate(b.Left);
                return TemplateValues.Truthy(first) ? first : Evaluate(b.Right);
            case BinaryExpr b:
                return TemplateBuiltins.Binary(this, b.Op, Evaluate(b.Left), Evaluate(b.Right));
            case ConditionalExpr c:
                return TemplateValues.Truthy(Evaluate(c.Condition)) ? Evaluate(c.Then) : c.Else is null ? new Undefined("else") : Evaluate(c.Else);
            default:
                throw Error($"cannot evaluate {expr.GetType().Name}");
        }
    }

    private long? Int(Expr? e) => e is null ? null : Evaluate(e) switch
    {
        long l => l,
        null => null,
        var v => throw Error($"a slice bound is {TemplateValues.TypeName(v)}, not an integer"),
    };

    /// <summary>The expression as the template wrote it, roughly, for error messages.</summary>
    private static string Describe(Expr e) => e switch
    {
        NameExpr n => n.Name,
        AttrExpr a => $"{Describe(a.Target)}.{a.Name}",
        IndexExpr { Index: Literal l } i => $"{Describe(i.Target)}[{(l.Value is string s ? $"'{s}'" : TemplateValues.Print(l.Value))}]",
        IndexExpr i => $"{Describe(i.Target)}[…]",
        CallExpr c => $"{Describe(c.Callee)}(…)",
        _ => "a value",
    };
}
