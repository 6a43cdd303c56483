using System.Text.Json;

namespace PeftDsl.Errors;

/// <summary>A JSON syntax error as people count: System.Text.Json reports 0-based lines and byte offsets
/// ("LineNumber: 1 | BytePositionInLine: 27" is line 2, column 28).</summary>
internal static class JsonErrors
{
    public static string Describe(JsonException e)
    {
        var message = e.Message;
        var cut = message.IndexOf(" Path: ", StringComparison.Ordinal);
        if (cut < 0) cut = message.IndexOf(" LineNumber: ", StringComparison.Ordinal);
        if (cut >= 0) message = message[..cut];
        return e.LineNumber is { } line
            ? $"line {line + 1}, column {(e.BytePositionInLine ?? 0) + 1}: {message.TrimEnd('.')}"
            : message.TrimEnd('.');
    }
}
