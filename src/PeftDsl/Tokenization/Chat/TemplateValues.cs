using System.Globalization;
using System.Text;
using System.Text.Json;

namespace PeftDsl.Tokenization.Chat;

/// <summary>Jinja's undefined: falsy, prints as nothing, iterates as empty (so it is "iterable", contains nothing and
/// trims, joins and upper-cases to ""); attributes, calls, arithmetic and the other filters on it are an error that
/// names what was undefined, a little stricter than Jinja's default Undefined, which transformers uses.</summary>
internal sealed class Undefined(string name)
{
    public string Name { get; } = name;
}

/// <summary><c>namespace(…)</c>: attributes a loop body can set and the code after the loop can read.</summary>
internal sealed class Namespace : Dictionary<string, object?>;

/// <summary>A function or bound method: positional and keyword arguments in, a value out.</summary>
internal delegate object? Callable(List<object?> args, Dictionary<string, object?> kwargs);

/// <summary>
/// Template values: null (None), <see cref="Undefined"/>, bool, long, double, string, List&lt;object?&gt;,
/// Dictionary&lt;string, object?&gt; (insertion-ordered), <see cref="Namespace"/>, <see cref="Callable"/>. Printing,
/// truth and equality follow Python, as Jinja does.
/// </summary>
internal static class TemplateValues
{
    public static object? FromJson(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.String => e.GetString(),
        JsonValueKind.Number => e.TryGetInt64(out var l) ? (object)l : e.GetDouble(),   // (object): else 1 would become 1.0
        JsonValueKind.True => true,
        JsonValueKind.False => false,
        JsonValueKind.Array => e.EnumerateArray().Select(FromJson).ToList(),
        JsonValueKind.Object => e.EnumerateObject().Aggregate(new Dictionary<string, object?>(), (d, p) => { d[p.Name] = FromJson(p.Value); return d; }),
        _ => null,
    };

    public static bool Truthy(object? v) => v switch
    {
        null or Undefined => false,
        bool b => b,
        long l => l != 0,
        double d => d != 0,
        string s => s.Length > 0,
        System.Collections.ICollection c => c.Count > 0,
        _ => true,
    };

    public static string TypeName(object? v) => v switch
    {
        null => "none",
        Undefined => "undefined",
        bool => "boolean",
        long => "integer",
        double => "float",
        string => "string",
        List<object?> => "list",
        Namespace => "namespace",
        Dictionary<string, object?> => "mapping",
        Callable => "function",
        _ => v.GetType().Name,
    };

    /// <summary>What {{ v }} prints: Python's str().</summary>
    public static string Print(object? v) => v switch
    {
        string s => s,
        Undefined => "",
        _ => Repr(v, top: true),
    };

    private static string Repr(object? v, bool top = false) => v switch
    {
        null => "None",
        Undefined => "",
        bool b => b ? "True" : "False",
        long l => l.ToString(CultureInfo.InvariantCulture),
        double d => PythonFloat(d),
        string s => top ? s : StringRepr(s),
        List<object?> list => "[" + string.Join(", ", list.Select(x => Repr(x))) + "]",
        Dictionary<string, object?> d => "{" + string.Join(", ", d.Select(p => Repr(p.Key) + ": " + Repr(p.Value))) + "}",
        _ => v.ToString() ?? "",
    };

    /// <summary>Python's repr of a str: single quotes unless the text has one and no double quote; backslash
    /// escapes for the quote, backslashes, line breaks, tabs and other control characters.</summary>
    private static string StringRepr(string s)
    {
        var quote = s.Contains('\'') && !s.Contains('"') ? '"' : '\'';
        var text = new StringBuilder().Append(quote);
        foreach (var c in s)
            text.Append(c switch
            {
                '\\' => "\\\\",
                '\n' => "\\n",
                '\r' => "\\r",
                '\t' => "\\t",
                _ when c == quote => "\\" + c,
                < ' ' or (>= '\u007f' and <= '\u009f') => $"\\x{(int)c:x2}",
                _ => c.ToString(),
            });
        return text.Append(quote).ToString();
    }

    /// <summary>Python's repr of a float: the shortest digits that read back (as .NET's "R"), written in fixed
    /// notation when the leading digit's power of ten is in [-4, 16), else as 1.5e+16 (.NET's own switch differs).</summary>
    public static string PythonFloat(double d)
    {
        if (double.IsNaN(d)) return "nan";
        if (double.IsInfinity(d)) return d > 0 ? "inf" : "-inf";
        var r = d.ToString("R", CultureInfo.InvariantCulture);
        var sign = r.StartsWith('-') ? "-" : "";
        var parts = r.TrimStart('-').Split('E');
        var exponent = parts.Length > 1 ? int.Parse(parts[1], CultureInfo.InvariantCulture) : 0;
        var point = parts[0].IndexOf('.') is var p && p >= 0 ? p : parts[0].Length;
        var digits = parts[0].Replace(".", "");
        var lead = digits.Length - digits.TrimStart('0').Length;
        var significant = digits.TrimStart('0').TrimEnd('0');
        if (significant.Length == 0) return sign + "0.0";
        var power = point - 1 - lead + exponent;   // of the leading significant digit
        if (power is >= -4 and < 16)
        {
            if (power < 0) return $"{sign}0.{new string('0', -power - 1)}{significant}";
            var whole = significant.Length > power + 1 ? significant[..(power + 1)] : significant.PadRight(power + 1, '0');
            var fraction = significant.Length > power + 1 ? significant[(power + 1)..] : "0";
            return $"{sign}{whole}.{fraction}";
        }
        var mantissa = significant.Length > 1 ? $"{significant[0]}.{significant[1..]}" : significant;
        return $"{sign}{mantissa}e{(power < 0 ? "-" : "+")}{Math.Abs(power):00}";
    }

    public static new bool Equals(object? a, object? b) => (a, b) switch
    {
        (null, null) => true,
        (Undefined, Undefined) => true,
        (long x, long y) => x == y,
        (long x, double y) => x == y,
        (double x, long y) => x == y,
        (double x, double y) => x == y,
        (bool x, bool y) => x == y,
        (bool x, long y) => (x ? 1 : 0) == y,
        (long x, bool y) => x == (y ? 1 : 0),
        (string x, string y) => x == y,
        (List<object?> x, List<object?> y) => x.Count == y.Count && x.Zip(y).All(p => Equals(p.First, p.Second)),
        (Dictionary<string, object?> x, Dictionary<string, object?> y) => x.Count == y.Count && x.All(p => y.TryGetValue(p.Key, out var o) && Equals(p.Value, o)),
        _ => ReferenceEquals(a, b),
    };

    /// <summary>transformers' tojson: Python's json.dumps with ensure_ascii off; ", " and ": " between items, or
    /// newlines and <paramref name="indent"/> spaces when given.</summary>
    public static string ToJson(object? v, int? indent = null, bool sortKeys = false, bool ensureAscii = false, (string Item, string Key)? separators = null)
    {
        var (itemSeparator, keySeparator) = separators ?? (indent is null ? (", ", ": ") : (",", ": "));
        var text = new StringBuilder();
        Write(v, 0);
        return text.ToString();

        void Write(object? value, int depth)
        {
            switch (value)
            {
                case null or Undefined: text.Append("null"); break;
                case bool b: text.Append(b ? "true" : "false"); break;
                case long l: text.Append(l.ToString(CultureInfo.InvariantCulture)); break;
                case double d: text.Append(double.IsNaN(d) ? "NaN" : double.IsInfinity(d) ? (d > 0 ? "Infinity" : "-Infinity") : PythonFloat(d)); break;
                case string s: String(s); break;
                case List<object?> list: Items(list.Select(x => ((string?)null, x)).ToList(), '[', ']', depth); break;
                case Dictionary<string, object?> dict:
                    var pairs = dict.Select(p => ((string?)p.Key, p.Value));
                    if (sortKeys) pairs = pairs.OrderBy(p => p.Item1, StringComparer.Ordinal);
                    Items(pairs.ToList(), '{', '}', depth);
                    break;
                default: String(Print(value)); break;
            }
        }

        void Items(List<(string? Key, object? Value)> items, char open, char close, int depth)
        {
            text.Append(open);
            if (items.Count == 0)
            {
                text.Append(close);
                return;
            }
            for (var i = 0; i < items.Count; i++)
            {
                if (i > 0) text.Append(itemSeparator);
                if (indent is { } n) text.Append('\n').Append(' ', n * (depth + 1));
                if (items[i].Key is { } key)
                {
                    String(key);
                    text.Append(keySeparator);
                }
                Write(items[i].Value, depth + 1);
            }
            if (indent is { } m) text.Append('\n').Append(' ', m * depth);
            text.Append(close);
        }

        void String(string s)
        {
            text.Append('"');
            foreach (var c in s)
                switch (c)
                {
                    case '"': text.Append("\\\""); break;
                    case '\\': text.Append("\\\\"); break;
                    case '\n': text.Append("\\n"); break;
                    case '\r': text.Append("\\r"); break;
                    case '\t': text.Append("\\t"); break;
                    case '\b': text.Append("\\b"); break;
                    case '\f': text.Append("\\f"); break;
                    case < ' ': text.Append($"\\u{(int)c:x4}"); break;
                    case > '~' when ensureAscii: text.Append($"\\u{(int)c:x4}"); break;   // per UTF-16 unit, as Python
                    default: text.Append(c); break;
                }
            text.Append('"');
        }
    }
}
