using System.Globalization;
using PeftDsl.Errors;

namespace PeftDsl.Tokenization.Chat;

/// <summary>The functions, filters, tests, operators and methods chat templates call, with Jinja's and Python's
/// meaning. Anything else is refused by name.</summary>
internal static class TemplateBuiltins
{
    private static List<object?> L(params object?[] items) => [.. items];

    /// <summary>The filters <see cref="Filter"/> computes; a template naming another is refused when read
    /// (TemplateCheck). ChatTemplateSyntaxTests checks each is handled.</summary>
    public static readonly HashSet<string> FilterNames =
    [
        "length", "count", "trim", "tojson", "string", "upper", "lower", "capitalize", "title", "first", "last", "join", "default", "d",
        "list", "reverse", "replace", "int", "float", "abs", "safe", "items", "selectattr", "rejectattr", "select", "reject", "map", "unique",
    ];

    /// <summary>The tests <see cref="Test"/> computes.</summary>
    public static readonly HashSet<string> TestNames =
    [
        "defined", "undefined", "none", "string", "number", "integer", "float", "boolean", "true", "false", "mapping", "iterable", "sequence",
        "callable", "odd", "even", "divisibleby", "eq", "equalto", "==", "sameas", "ne", "!=", "gt", ">", "ge", ">=", "lt", "<", "le", "<=",
        "in", "lower", "upper",
    ];

    /// <summary>jinja2.sandbox.MAX_RANGE.</summary>
    private const long MaxRange = 100000;

    public static Dictionary<string, object?> Globals(TemplateRenderer r) => new()
    {
        ["namespace"] = (Callable)((args, kwargs) =>
        {
            var ns = new Namespace();
            foreach (var a in args)
                if (a is Dictionary<string, object?> d) foreach (var p in d) ns[p.Key] = p.Value;
            foreach (var p in kwargs) ns[p.Key] = p.Value;
            return ns;
        }),
        ["raise_exception"] = (Callable)((args, _) =>
            throw new PeftDslException(r.Error("").Message.TrimEnd(' ', ':') + ": the template refuses the conversation: " + (args.Count > 0 ? TemplateValues.Print(args[0]) : ""))),
        ["range"] = (Callable)((args, _) =>
        {
            var n = args.Select(a => a is long l ? l : throw r.Error("range() takes integers")).ToList();
            var (start, stop, step) = n.Count switch { 1 => (0L, n[0], 1L), 2 => (n[0], n[1], 1L), 3 => (n[0], n[1], n[2]), _ => throw r.Error("range() takes 1 to 3 arguments") };
            if (step == 0) throw r.Error("range() step is 0");
            // Jinja's sandbox (transformers renders in it) refuses ranges past MAX_RANGE.
            var count = step > 0 ? ((Int128)stop - start + step - 1) / step : ((Int128)start - stop - step - 1) / -(Int128)step;
            if (count > MaxRange) throw r.Error($"range() of {count} items: the sandbox allows at most {MaxRange}");
            var list = new List<object?>();
            for (var i = start; step > 0 ? i < stop : i > stop; i += step) list.Add(i);
            return list;
        }),
        // transformers' strftime_now: today's date for templates that print one (Llama 3.2).
        ["strftime_now"] = (Callable)((args, _) => Strftime(DateTime.Now, args.Count > 0 ? TemplateValues.Print(args[0]) : "")),
    };

    private static string Strftime(DateTime t, string format) => System.Text.RegularExpressions.Regex.Replace(format, "%[a-zA-Z%]", m => m.Value[1] switch
    {
        'd' => t.ToString("dd", CultureInfo.InvariantCulture),
        'm' => t.ToString("MM", CultureInfo.InvariantCulture),
        'Y' => t.ToString("yyyy", CultureInfo.InvariantCulture),
        'y' => t.ToString("yy", CultureInfo.InvariantCulture),
        'b' => t.ToString("MMM", CultureInfo.InvariantCulture),
        'B' => t.ToString("MMMM", CultureInfo.InvariantCulture),
        'H' => t.ToString("HH", CultureInfo.InvariantCulture),
        'M' => t.ToString("mm", CultureInfo.InvariantCulture),
        'S' => t.ToString("ss", CultureInfo.InvariantCulture),
        'A' => t.ToString("dddd", CultureInfo.InvariantCulture),
        'a' => t.ToString("ddd", CultureInfo.InvariantCulture),
        '%' => "%",
        _ => m.Value,
    });

    public static object? Attribute(TemplateRenderer r, object? target, string name, string description) => target switch
    {
        Namespace ns => ns.TryGetValue(name, out var v) ? v : new Undefined(description),
        Dictionary<string, object?> d when d.TryGetValue(name, out var v) => v,
        Dictionary<string, object?> d => DictMethod(r, d, name) ?? new Undefined(description),
        string s => StringMethod(r, s, name) ?? new Undefined(description),
        List<object?> list => ListMethod(list, name) ?? new Undefined(description),
        _ => new Undefined(description),
    };

    public static object? Index(TemplateRenderer r, object? target, object? index, string description)
    {
        switch (target, index)
        {
            case (Dictionary<string, object?> d, string key):
                return d.TryGetValue(key, out var v) ? v : d is Namespace ? new Undefined(description) : DictMethod(r, d, key) ?? new Undefined(description);
            case (List<object?> list, long i):
                var at = i < 0 ? list.Count + i : i;
                return at >= 0 && at < list.Count ? list[(int)at] : new Undefined(description);
            case (string s, long i):
                var runes = s.EnumerateRunes().ToList();
                var k = i < 0 ? runes.Count + i : i;
                return k >= 0 && k < runes.Count ? runes[(int)k].ToString() : new Undefined(description);
            case (string s, string method):
                return StringMethod(r, s, method) ?? new Undefined(description);
            default:
                return new Undefined(description);
        }
    }

    /// <summary>Python's slice: negative bounds count from the end; a negative step walks backwards.</summary>
    public static object? Slice(TemplateRenderer r, object? target, long? start, long? stop, long? step)
    {
        var items = target switch
        {
            List<object?> list => list,
            string s => s.EnumerateRunes().Select(x => (object?)x.ToString()).ToList(),
            _ => throw r.Error($"cannot slice {TemplateValues.TypeName(target)}"),
        };
        var n = (long)items.Count;
        var st = step ?? 1;
        if (st == 0) throw r.Error("slice step cannot be zero");
        long Clamp(long? v, long whenNull, long low, long high)
        {
            if (v is null) return whenNull;
            var x = v.Value < 0 ? v.Value + n : v.Value;
            return Math.Clamp(x, low, high);
        }
        var result = new List<object?>();
        if (st > 0)
            for (long i = Clamp(start, 0, 0, n), end = Clamp(stop, n, 0, n); i < end; i += st) result.Add(items[(int)i]);
        else
            for (long i = Clamp(start, n - 1, -1, n - 1), end = Clamp(stop, -1, -1, n - 1); i > end; i += st) result.Add(items[(int)i]);
        return target is string ? string.Concat(result.Cast<string>()) : result;
    }

    public static object? Binary(TemplateRenderer r, string op, object? a, object? b)
    {
        if (op == "~") return TemplateValues.Print(a) + TemplateValues.Print(b);
        if (op is "==" or "!=") return TemplateValues.Equals(a, b) == (op == "==");
        // Jinja: an undefined value equals nothing in a list or dict, and holds nothing.
        if (op is "in" or "not in" && (b is Undefined || a is Undefined && b is List<object?> or Dictionary<string, object?>)) return op == "not in";
        if (a is Undefined ua) throw r.Error($"'{ua.Name}' is undefined");
        if (b is Undefined ub) throw r.Error($"'{ub.Name}' is undefined");
        if (op is "in" or "not in") return Contains(r, b, a) == (op == "in");
        switch (op, a, b)
        {
            case ("+", string sx, string sy): return sx + sy;
            case ("+", List<object?> lx, List<object?> ly): return lx.Concat(ly).ToList();
            case ("*", string rx, long ry): return string.Concat(Enumerable.Repeat(rx, (int)Math.Max(0, ry)));
        }
        if (Integer(a) is { } bx && Integer(b) is { } by && op == "**" && by >= 0)
        {
            // By squaring: a huge exponent of 0, 1 or -1 must not loop for ever; others overflow soon (one line).
            long power = 1, factor = bx;
            try
            {
                for (var e = by; e > 0; e >>= 1)
                {
                    if ((e & 1) == 1) power = checked(power * factor);
                    if (e > 1) factor = checked(factor * factor);
                }
            }
            catch (OverflowException)
            {
                throw r.Error($"{bx} ** {by} is past the 64-bit integers a template can compute");
            }
            return power;
        }
        if (Integer(a) is { } x && Integer(b) is { } y && op is "+" or "-" or "*" or "//" or "%")
        {
            if (op is "//" or "%" && y == 0) throw r.Error("division by zero");
            // Python floors integer division and takes the modulo's sign from the divisor.
            long Quotient() => x / y - ((x % y != 0) && ((x < 0) != (y < 0)) ? 1 : 0);
            return op switch { "+" => x + y, "-" => x - y, "*" => x * y, "//" => Quotient(), _ => x - y * Quotient() };
        }
        if (Number(a) is { } p && Number(b) is { } q)
        {
            return op switch
            {
                "+" => p + q,
                "-" => p - q,
                "*" => p * q,
                "**" => Math.Pow(p, q),
                "/" => q == 0 ? throw r.Error("division by zero") : p / q,
                "//" => q == 0 ? throw r.Error("division by zero") : Math.Floor(p / q),
                "%" => q == 0 ? throw r.Error("division by zero") : p - q * Math.Floor(p / q),
                "<" => (object)(p < q),
                ">" => p > q,
                "<=" => p <= q,
                ">=" => p >= q,
                _ => throw r.Error($"unknown operator '{op}'"),
            };
        }
        if (a is string s && b is string t && op is "<" or ">" or "<=" or ">=")
        {
            var c = string.CompareOrdinal(s, t);
            return op switch { "<" => c < 0, ">" => c > 0, "<=" => c <= 0, _ => c >= 0 };
        }
        throw r.Error($"'{op}' does not apply to {TemplateValues.TypeName(a)} and {TemplateValues.TypeName(b)}");
    }

    private static long? Integer(object? v) => v switch { long l => l, bool b => b ? 1 : 0, _ => null };

    private static double? Number(object? v) => v switch { long l => l, double d => d, bool b => b ? 1 : 0, _ => null };

    private static bool Contains(TemplateRenderer r, object? container, object? item) => container switch
    {
        string s when item is string t => s.Contains(t, StringComparison.Ordinal),
        List<object?> list => list.Any(x => TemplateValues.Equals(x, item)),
        Dictionary<string, object?> d => item is string k && d.ContainsKey(k),
        _ => throw r.Error($"'in' does not apply to {TemplateValues.TypeName(container)}"),
    };

    public static bool Test(TemplateRenderer r, string name, object? v, List<object?> args) => name switch
    {
        "defined" => v is not Undefined,
        "undefined" => v is Undefined,
        "none" => v is null,
        "string" => v is string,
        "number" => v is long or double,
        "integer" => v is long,
        "float" => v is double,
        "boolean" => v is bool,
        "true" => v is true,
        "false" => v is false,
        "mapping" => v is Dictionary<string, object?>,
        // Jinja's Undefined iterates as empty and has a length, so both tests hold for it.
        "iterable" => v is string or List<object?> or Dictionary<string, object?> or Undefined,
        "sequence" => v is string or List<object?> or Dictionary<string, object?> or Undefined,
        "callable" => v is Callable,
        "odd" => v is long l && l % 2 != 0,
        "even" => v is long l && l % 2 == 0,
        "divisibleby" => v is long l && args is [long d] && d != 0 && l % d == 0,
        "eq" or "equalto" or "==" or "sameas" => args.Count == 1 && TemplateValues.Equals(v, args[0]),
        "ne" or "!=" => args.Count == 1 && !TemplateValues.Equals(v, args[0]),
        "gt" or ">" => args.Count == 1 && Binary(r, ">", v, args[0]) is true,
        "ge" or ">=" => args.Count == 1 && Binary(r, ">=", v, args[0]) is true,
        "lt" or "<" => args.Count == 1 && Binary(r, "<", v, args[0]) is true,
        "le" or "<=" => args.Count == 1 && Binary(r, "<=", v, args[0]) is true,
        "in" => args.Count == 1 && Contains(r, args[0], v),
        "lower" => v is string s && s == s.ToLowerInvariant(),
        "upper" => v is string s && s == s.ToUpperInvariant(),
        _ => throw r.Error($"test '{name}' is not supported"),
    };

    public static object? Filter(TemplateRenderer r, string name, object? v, List<object?> args, Dictionary<string, object?> kwargs)
    {
        object? Arg(int i, string key, object? fallback) => i < args.Count ? args[i] : kwargs.TryGetValue(key, out var k) ? k : fallback;
        // Jinja's Undefined prints as "" and iterates as empty, so these filters give an empty result for it.
        if (v is Undefined && name is "trim" or "upper" or "lower" or "capitalize" or "title" or "join") return "";
        if (v is Undefined && name == "items") return new List<object?>();
        if (v is Undefined u && name is not ("default" or "d" or "string" or "length" or "count" or "list" or "tojson"))
            throw r.Error($"'{u.Name}' is undefined");
        switch (name)
        {
            case "length" or "count":
                return v switch
                {
                    Undefined => 0L,
                    string s => (long)s.EnumerateRunes().Count(),
                    System.Collections.ICollection c => (long)c.Count,
                    _ => throw r.Error($"{TemplateValues.TypeName(v)} has no length"),
                };
            case "trim":
                return Arg(0, "chars", null) is string chars ? TemplateValues.Print(v).Trim(chars.ToCharArray()) : TemplateValues.Print(v).Trim();
            case "tojson":
            {
                // transformers' tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False): json.dumps.
                if (v is Undefined undefined) throw r.Error($"'{undefined.Name}' is undefined, and undefined is not JSON serializable");
                var indent = Arg(1, "indent", null) switch
                {
                    null => (int?)null,
                    long n => (int)Math.Max(0, n),
                    var other => throw r.Error($"tojson: indent must be an integer, got {TemplateValues.TypeName(other)}"),
                };
                var separators = Arg(2, "separators", null) switch
                {
                    null => indent is null ? (", ", ": ") : (",", ": "),
                    List<object?> { Count: 2 } pair when pair[0] is string item && pair[1] is string key => (item, key),
                    var other => throw r.Error($"tojson: separators must be two strings, got {TemplateValues.Print(other)}"),
                };
                return TemplateValues.ToJson(v, indent, TemplateValues.Truthy(Arg(3, "sort_keys", false)), TemplateValues.Truthy(Arg(0, "ensure_ascii", false)), separators);
            }
            case "string":
                return TemplateValues.Print(v);
            case "upper":
                return TemplateValues.Print(v).ToUpperInvariant();
            case "lower":
                return TemplateValues.Print(v).ToLowerInvariant();
            case "capitalize":
                var text = TemplateValues.Print(v);
                return text.Length == 0 ? text : char.ToUpperInvariant(text[0]) + text[1..].ToLowerInvariant();
            case "title":
                return CultureInfo.InvariantCulture.TextInfo.ToTitleCase(TemplateValues.Print(v).ToLowerInvariant());
            case "first":
                return r.Iterate(v) is { Count: > 0 } f ? f[0] : new Undefined("first");
            case "last":
                return r.Iterate(v) is { Count: > 0 } l ? l[^1] : new Undefined("last");
            case "join":
                return string.Join(TemplateValues.Print(Arg(0, "d", "")), r.Iterate(v).Select(x =>
                    Arg(1, "attribute", null) is string attribute ? TemplateValues.Print(Attribute(r, x, attribute, attribute)) : TemplateValues.Print(x)));
            case "default" or "d":
                var boolean = TemplateValues.Truthy(Arg(1, "boolean", false));
                return v is Undefined || boolean && !TemplateValues.Truthy(v) ? Arg(0, "default_value", "") : v;
            case "list":
                return r.Iterate(v).ToList();
            case "reverse":
                return v is string rs ? string.Concat(rs.EnumerateRunes().Reverse().Select(x => x.ToString())) : Enumerable.Reverse(r.Iterate(v)).ToList();
            case "replace":
                return TemplateValues.Print(v).Replace(TemplateValues.Print(Arg(0, "old", "")), TemplateValues.Print(Arg(1, "new", "")));
            case "int":
                return v switch { long li => li, double d => (long)d, string s when long.TryParse(s.Trim(), out var p) => p, bool b => b ? 1L : 0L, _ => Arg(0, "default", 0L) };
            case "float":
                return v switch { long lf => (double)lf, double d => d, string s when double.TryParse(s.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out var p) => p, _ => Arg(0, "default", 0.0) };
            case "abs":
                return v switch { long la => Math.Abs(la), double d => Math.Abs(d), _ => throw r.Error("abs needs a number") };
            case "safe" or "e" or "escape" when name == "safe":
                return v;
            case "items":
                return v is Dictionary<string, object?> items ? items.Select(p => (object?)L(p.Key, p.Value)).ToList() : throw r.Error("items needs a mapping");
            case "selectattr" or "rejectattr":
                var attributeName = TemplateValues.Print(Arg(0, "attribute", ""));
                var test = args.Count > 1 ? TemplateValues.Print(args[1]) : null;
                var select = name == "selectattr";
                return r.Iterate(v).Where(x =>
                {
                    var value = Attribute(r, x, attributeName, attributeName);
                    var passed = test is null ? TemplateValues.Truthy(value) : Test(r, test, value, args.Skip(2).ToList());
                    return passed == select;
                }).ToList();
            case "select" or "reject":
                var testName = args.Count > 0 ? TemplateValues.Print(args[0]) : null;
                return r.Iterate(v).Where(x => (testName is null ? TemplateValues.Truthy(x) : Test(r, testName, x, args.Skip(1).ToList())) == (name == "select")).ToList();
            case "map":
                if (kwargs.TryGetValue("attribute", out var attr))
                    return r.Iterate(v).Select(x => Attribute(r, x, TemplateValues.Print(attr), TemplateValues.Print(attr))).ToList();
                if (args.Count > 0)
                    return r.Iterate(v).Select(x => Filter(r, TemplateValues.Print(args[0]), x, args.Skip(1).ToList(), [])).ToList();
                throw r.Error("map needs attribute= or a filter name");
            case "unique":
                var seen = new List<object?>();
                foreach (var x in r.Iterate(v)) if (!seen.Any(y => TemplateValues.Equals(x, y))) seen.Add(x);
                return seen;
            default:
                throw r.Error($"filter '{name}' is not supported");
        }
    }

    private static object? DictMethod(TemplateRenderer r, Dictionary<string, object?> d, string name) => name switch
    {
        "items" => (Callable)((_, _) => d.Select(p => (object?)L(p.Key, p.Value)).ToList()),
        "keys" => (Callable)((_, _) => d.Keys.Cast<object?>().ToList()),
        "values" => (Callable)((_, _) => d.Values.ToList()),
        "get" => (Callable)((args, _) => args.Count > 0 && args[0] is string k && d.TryGetValue(k, out var v) ? v : args.Count > 1 ? args[1] : null),
        _ => null,
    };

    private static object? ListMethod(List<object?> list, string name) => name switch
    {
        "count" => (Callable)((args, _) => (long)list.Count(x => args.Count > 0 && TemplateValues.Equals(x, args[0]))),
        "index" => (Callable)((args, _) => (long)list.FindIndex(x => args.Count > 0 && TemplateValues.Equals(x, args[0]))),
        _ => null,
    };

    private static object? StringMethod(TemplateRenderer r, string s, string name)
    {
        string Text(List<object?> args, int i) => i < args.Count ? TemplateValues.Print(args[i]) : throw r.Error($"{name}() needs an argument");
        char[]? Chars(List<object?> args) => args.Count > 0 && args[0] is string c ? c.ToCharArray() : null;
        bool Affix(List<object?> args, Func<string, bool> check) => args.Count > 0 && args[0] switch
        {
            List<object?> options => options.Any(o => check(TemplateValues.Print(o))),
            var o => check(TemplateValues.Print(o)),
        };
        return name switch
        {
            "startswith" => (Callable)((args, _) => Affix(args, p => s.StartsWith(p, StringComparison.Ordinal))),
            "endswith" => (Callable)((args, _) => Affix(args, p => s.EndsWith(p, StringComparison.Ordinal))),
            "strip" => (Callable)((args, _) => Chars(args) is { } c ? s.Trim(c) : s.Trim()),
            "lstrip" => (Callable)((args, _) => Chars(args) is { } c ? s.TrimStart(c) : s.TrimStart()),
            "rstrip" => (Callable)((args, _) => Chars(args) is { } c ? s.TrimEnd(c) : s.TrimEnd()),
            "upper" => (Callable)((_, _) => s.ToUpperInvariant()),
            "lower" => (Callable)((_, _) => s.ToLowerInvariant()),
            "title" => (Callable)((_, _) => CultureInfo.InvariantCulture.TextInfo.ToTitleCase(s.ToLowerInvariant())),
            "capitalize" => (Callable)((_, _) => s.Length == 0 ? s : char.ToUpperInvariant(s[0]) + s[1..].ToLowerInvariant()),
            "replace" => (Callable)((args, _) => s.Replace(Text(args, 0), Text(args, 1), StringComparison.Ordinal)),
            "split" => (Callable)((args, kwargs) => Split(s, args.Count > 0 && args[0] is string sep ? sep : kwargs.GetValueOrDefault("sep") as string,
                args.Count > 1 && args[1] is long m ? m : kwargs.GetValueOrDefault("maxsplit") is long k ? k : -1)),
            "join" => (Callable)((args, _) => string.Join(s, r.Iterate(args.Count > 0 ? args[0] : null).Select(TemplateValues.Print))),
            "count" => (Callable)((args, _) => { var t = Text(args, 0); return t.Length == 0 ? s.Length + 1L : (long)(s.Length - s.Replace(t, "").Length) / t.Length; }),
            "find" => (Callable)((args, _) => (long)s.IndexOf(Text(args, 0), StringComparison.Ordinal)),
            "isdigit" => (Callable)((_, _) => s.Length > 0 && s.All(char.IsDigit)),
            "isspace" => (Callable)((_, _) => s.Length > 0 && s.All(char.IsWhiteSpace)),
            _ => null,
        };
    }

    /// <summary>Python's str.split: without a separator, on runs of whitespace with empty pieces dropped.</summary>
    private static List<object?> Split(string s, string? separator, long maxSplit)
    {
        if (separator is null)
        {
            var words = s.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries).ToList();
            if (maxSplit >= 0 && words.Count > maxSplit + 1)
            {
                // Keep the rest of the text after maxSplit words as it is (left-trimmed).
                var rest = s.TrimStart();
                for (var i = 0; i < maxSplit; i++) rest = rest[(rest.IndexOf(words[i], StringComparison.Ordinal) + words[i].Length)..].TrimStart();
                words = [.. words.Take((int)maxSplit), rest];
            }
            return words.Cast<object?>().ToList();
        }
        if (separator.Length == 0) throw new PeftDslException("chat template: split() with an empty separator");
        var parts = maxSplit >= 0 ? s.Split(separator, (int)maxSplit + 1) : s.Split(separator);
        return parts.Cast<object?>().ToList();
    }
}
