using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using PeftDsl.Errors;

namespace PeftDsl.Peft;

/// <summary>Typed reads of <c>adapter_config.json</c> fields, each refusing a value of the wrong kind with the file
/// and the field; shared by every method's config reader.</summary>
internal static class ConfigFields
{
    internal static string Show(JsonNode? value) => value?.ToJsonString() ?? "null";

    internal static string? Str(JsonObject json, string field, string source) => json[field] switch
    {
        null => null,
        JsonValue v when v.GetValueKind() == JsonValueKind.String => v.GetValue<string>(),
        var other => throw new PeftDslException($"{source}: {field} must be a string, got {Show(other)}"),
    };

    internal static bool? Bool(JsonObject json, string field, string source) => json[field] switch
    {
        null => null,
        JsonValue v when v.GetValueKind() is JsonValueKind.True or JsonValueKind.False => v.GetValue<bool>(),
        var other => throw new PeftDslException($"{source}: {field} must be true or false, got {Show(other)}"),
    };

    internal static double? Number(JsonObject json, string field, string source) => json[field] switch
    {
        null => null,
        JsonValue v when v.GetValueKind() == JsonValueKind.Number => v.GetValue<double>(),
        var other => throw new PeftDslException($"{source}: {field} must be a number, got {Show(other)}"),
    };

    internal static int? Int(JsonObject json, string field, string source) => json[field] switch
    {
        null => null,
        JsonValue v when v.GetValueKind() == JsonValueKind.Number => checked((int)Integral(v, field, source)),
        var other => throw new PeftDslException($"{source}: {field} must be an integer, got {Show(other)}"),
    };

    internal static long Integral(JsonValue v, string field, string source)
    {
        var d = v.GetValue<double>();
        if (d != Math.Floor(d) || Math.Abs(d) > int.MaxValue)
            throw new PeftDslException($"{source}: {field} must be an integer, got {d.ToString(CultureInfo.InvariantCulture)}");
        return (long)d;
    }
}
