using System.Globalization;
using System.Text;
using PeftDsl.Errors;

namespace PeftDsl.Tokenization.Chat;

internal enum TokenKind { Name, String, Integer, Float, Operator, End }

internal readonly record struct Token(TokenKind Kind, string Text, object? Value = null);

/// <summary>Jinja expression tokens: names, string and number literals, operators.</summary>
internal static class ExpressionLexer
{
    private static readonly string[] Operators =
        ["//", "**", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "<", ">", "=", "(", ")", "[", "]", "{", "}", ".", ",", ":", "|"];

    public static List<Token> Tokens(string source, Func<string, PeftDslException> error)
    {
        var tokens = new List<Token>();
        var i = 0;
        while (i < source.Length)
        {
            var c = source[i];
            if (char.IsWhiteSpace(c))
            {
                i++;
                continue;
            }
            if (char.IsLetter(c) || c == '_')
            {
                var start = i;
                while (i < source.Length && (char.IsLetterOrDigit(source[i]) || source[i] == '_')) i++;
                tokens.Add(new(TokenKind.Name, source[start..i]));
                continue;
            }
            if (char.IsAsciiDigit(c))
            {
                var start = i;
                while (i < source.Length && (char.IsAsciiDigit(source[i]) || source[i] == '_')) i++;
                var isFloat = i + 1 < source.Length && source[i] == '.' && char.IsAsciiDigit(source[i + 1]);
                if (isFloat)
                {
                    i++;
                    while (i < source.Length && char.IsAsciiDigit(source[i])) i++;
                }
                var text = source[start..i].Replace("_", "");
                tokens.Add(isFloat
                    ? new(TokenKind.Float, text, double.Parse(text, CultureInfo.InvariantCulture))
                    : new(TokenKind.Integer, text, long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var n) ? n
                        : throw error($"the integer {text} is too large (at most {long.MaxValue})")));
                continue;
            }
            if (c is '\'' or '"')
            {
                tokens.Add(new(TokenKind.String, "string", ReadString(source, ref i, error)));
                continue;
            }
            var op = Operators.FirstOrDefault(o => string.CompareOrdinal(source, i, o, 0, o.Length) == 0)
                     ?? throw error($"unexpected character '{c}'");
            tokens.Add(new(TokenKind.Operator, op));
            i += op.Length;
        }
        tokens.Add(new(TokenKind.End, "end of expression"));
        return tokens;
    }

    /// <summary>A quoted string with Python's escapes (\n, \t, \\, \', \", \uXXXX).</summary>
    private static string ReadString(string source, ref int i, Func<string, PeftDslException> error)
    {
        var quote = source[i++];
        var text = new StringBuilder();
        while (true)
        {
            if (i >= source.Length) throw error("a string literal is never closed");
            var c = source[i++];
            if (c == quote) return text.ToString();
            if (c != '\\')
            {
                text.Append(c);
                continue;
            }
            if (i >= source.Length) throw error("a string literal ends in a backslash");
            var e = source[i++];
            switch (e)
            {
                case 'n': text.Append('\n'); break;
                case 't': text.Append('\t'); break;
                case 'r': text.Append('\r'); break;
                case '0': text.Append('\0'); break;
                case '\\' or '\'' or '"': text.Append(e); break;
                case 'u' when i + 4 <= source.Length && int.TryParse(source.AsSpan(i, 4), NumberStyles.HexNumber, null, out var code):
                    text.Append((char)code);
                    i += 4;
                    break;
                case 'x' when i + 2 <= source.Length && int.TryParse(source.AsSpan(i, 2), NumberStyles.HexNumber, null, out var hex):
                    text.Append((char)hex);
                    i += 2;
                    break;
                case '\n': break;
                default: text.Append('\\').Append(e); break;
            }
        }
    }
}
