using System.Globalization;
using System.Text.Json;
using PeftDsl.Errors;

namespace PeftDsl.Config;

/// <summary>
/// A parsed config.json. Generated <c>FromJson</c> methods read through it so that every error names the
/// file and the key, and so that dotted keys (<c>rope_parameters.rope_theta</c>) and fallbacks work the same way.
/// </summary>
public sealed class ConfigJson
{
    private readonly JsonElement root;

    private ConfigJson(JsonElement root, string source)
    {
        this.root = root;
        Source = source;
    }

    /// <summary>Where the JSON came from, for error messages.</summary>
    public string Source { get; }

    /// <summary>Reads and parses a config file (usually a checkpoint's <c>config.json</c>); errors name <paramref name="path"/>.</summary>
    /// <exception cref="ConfigException">The file is missing, not valid JSON, or not a JSON object.</exception>
    public static ConfigJson Load(string path)
    {
        if (!File.Exists(path))
            throw new ConfigException($"{path}: file not found");
        return Parse(File.ReadAllText(path), path);
    }

    /// <summary>Parses JSON text (comments allowed) whose top level must be an object.</summary>
    /// <param name="json">The JSON text.</param>
    /// <param name="source">What to call the text in error messages (a path, or a label such as <c>"test config"</c>).</param>
    /// <exception cref="ConfigException">The text is not valid JSON or not an object.</exception>
    public static ConfigJson Parse(string json, string source)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(json, new JsonDocumentOptions { MaxDepth = 64, CommentHandling = JsonCommentHandling.Skip });
        }
        catch (JsonException e)
        {
            throw new ConfigException($"{source}: not valid JSON ({JsonErrors.Describe(e)})", e);
        }
        if (doc.RootElement.ValueKind != JsonValueKind.Object)
            throw new ConfigException($"{source}: expected a JSON object at the top level, found {doc.RootElement.ValueKind}");
        return new ConfigJson(doc.RootElement.Clone(), source);
    }

    /// <summary>The first of <paramref name="keys"/> that is present (null counts as absent). Two present keys that
    /// disagree (a v5 <c>rope_parameters.rope_type</c> beside a legacy <c>rope_scaling.type</c>) are refused: which
    /// one transformers applies is not ours to guess.</summary>
    public bool TryGet(string[] keys, out JsonElement value, out string key)
    {
        for (var i = 0; i < keys.Length; i++)
        {
            if (TryGetPath(keys[i], out value) && value.ValueKind != JsonValueKind.Null)
            {
                key = keys[i];
                foreach (var other in keys.Skip(i + 1))
                    if (TryGetPath(other, out var second) && second.ValueKind != JsonValueKind.Null && !Same(value, second))
                        throw new ConfigException($"{Source}: \"{key}\": {value.GetRawText()} and \"{other}\": {second.GetRawText()} disagree; " +
                                                  "refusing rather than guessing which one applies");
                return true;
            }
        }
        value = default;
        key = keys[0];
        return false;
    }

    private static bool Same(JsonElement a, JsonElement b) =>
        a.ValueKind == JsonValueKind.Number && b.ValueKind == JsonValueKind.Number
            ? a.GetDouble() == b.GetDouble()
            : a.ValueKind == b.ValueKind && a.GetRawText() == b.GetRawText();

    /// <summary>A value that must be present; <paramref name="member"/> is the C# property it binds, for the message.</summary>
    public T Required<T>(string[] keys, string member)
    {
        if (!TryGet(keys, out var value, out var key))
            throw new ConfigException($"{Source}: missing required key '{string.Join("' or '", keys)}' (bound to {member})");
        return Convert<T>(value, key, member);
    }

    /// <summary>A value that may be absent or null; then <paramref name="value"/> is left unset.</summary>
    public bool Optional<T>(string[] keys, string member, out T value)
    {
        if (!TryGet(keys, out var element, out var key))
        {
            value = default!;
            return false;
        }
        value = Convert<T>(element, key, member);
        return true;
    }

    /// <summary>True when the (dotted) key is present with the value null. A typed property treats null as absent and
    /// keeps its default; a family whose default is not "none" (Gemma 2's soft-capping) asks this to tell them apart.</summary>
    public bool IsNull(string key) => TryGetPath(key, out var v) && v.ValueKind == JsonValueKind.Null;

    /// <summary>The raw top-level value of a key, if present; for callers that read beyond the typed record.</summary>
    public string? GetString(string key) =>
        TryGet([key], out var v, out _) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

    /// <summary>The raw top-level integer value of a key, if present and an integer.</summary>
    public long? GetInt(string key) =>
        TryGet([key], out var v, out _) && v.ValueKind == JsonValueKind.Number && v.TryGetInt64(out var n) ? n : null;

    /// <summary>A token-id key that may be one integer or a list (eos_token_id); empty when absent or null.</summary>
    public IReadOnlyList<long> TokenIds(string key)
    {
        if (!TryGet([key], out var value, out _)) return [];
        if (value.ValueKind == JsonValueKind.Number && value.TryGetInt64(out var one)) return [one];
        if (value.ValueKind == JsonValueKind.Array && value.EnumerateArray().All(e => e.ValueKind == JsonValueKind.Number && e.TryGetInt64(out _)))
            return value.EnumerateArray().Select(e => e.GetInt64()).ToList();
        throw new ConfigException($"{Source}: key '{key}' must be a token id or a list of token ids, found {value.GetRawText()}");
    }

    /// <summary>
    /// Refuses a bound value the declaration does not compute ([ConfigKey(Computes = …)]): the message names the key
    /// and its value (or the property's default when the key is absent), the property and what it computes.
    /// </summary>
    public void RequireComputed(string[] keys, object? value, object?[] computes, string member)
    {
        if (computes.Any(c => SameValue(c, value))) return;
        var found = TryGet(keys, out var element, out var key);
        var shown = string.Join(", ", computes.Select(c => c is string t ? JsonSerializer.Serialize(t) : c is null ? "null" : Show(c)));
        throw new ConfigException(found
            ? $"{Source}: \"{key}\": {Shorten(element.GetRawText())} is not computed by {member}'s declaration, which computes {shown}; refusing rather than running other math"
            : $"{Source}: '{string.Join("' / '", keys)}' is absent, and {member}'s default {(value is string v ? JsonSerializer.Serialize(v) : value is null ? "null" : Show(value))} is not among the values the declaration computes ({shown})");
    }

    /// <summary>
    /// Refuses a key that asks for a computation no property of <paramref name="declaration"/> binds (a parallel
    /// residual, sliding windows, partial rotary, rope scaling, …) unless its value means the plain computation.
    /// <paramref name="bound"/> are every key the declaration binds; a bound key (or one under it) is the
    /// declaration's to check.
    /// </summary>
    public void RefuseUncomputed(string[] bound, string declaration)
    {
        foreach (var rule in UncomputedKeys.Rules)
        {
            if (bound.Any(b => b == rule.Key || b.StartsWith(rule.Key + ".", StringComparison.Ordinal) || rule.Key.StartsWith(b + ".", StringComparison.Ordinal)))
                continue;
            if (!TryGetPath(rule.Key, out var value) || rule.IsPlain(value, this)) continue;
            throw new ConfigException($"{Source}: \"{rule.Key}\": {Shorten(value.GetRawText())} asks for {rule.Meaning}, which {declaration}'s declaration does not compute " +
                                      $"(no property binds the key); declare it, or use a checkpoint without it");
        }
        // Qwen2's switch: a declaration that applies sliding_window but never reads use_sliding_window would apply a
        // window the config turns off.
        if (bound.Contains("sliding_window") && !bound.Contains("use_sliding_window")
            && TryGetPath("use_sliding_window", out var use) && use.ValueKind == JsonValueKind.False)
            throw new ConfigException($"{Source}: \"use_sliding_window\": false switches the window off, but {declaration}'s declaration applies " +
                                      "sliding_window without reading this key; bind it too, or use a checkpoint without it");
    }

    /// <summary>The number at a top-level or dotted key, when present.</summary>
    internal double? Number(string key) =>
        TryGetPath(key, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetDouble() : null;

    private static bool SameValue(object? a, object? b) => (a, b) switch
    {
        (null, null) => true,
        (null, _) or (_, null) => false,
        (string x, string y) => x == y,
        (bool x, bool y) => x == y,
        (string or bool, _) or (_, string or bool) => false,
        _ => System.Convert.ToDouble(a, CultureInfo.InvariantCulture) == System.Convert.ToDouble(b, CultureInfo.InvariantCulture),
    };

    private static string Shorten(string raw) => raw.Length > 60 ? raw[..60] + "…" : raw;

    private bool TryGetPath(string dotted, out JsonElement value)
    {
        value = root;
        foreach (var part in dotted.Split('.'))
        {
            if (value.ValueKind != JsonValueKind.Object || !value.TryGetProperty(part, out value))
                return false;
        }
        return true;
    }

    private T Convert<T>(JsonElement e, string key, string member)
    {
        var target = Nullable.GetUnderlyingType(typeof(T)) ?? typeof(T);
        object? result = target switch
        {
            _ when target == typeof(int) => e.ValueKind == JsonValueKind.Number && e.TryGetInt32(out var i) ? i : null,
            _ when target == typeof(long) => e.ValueKind == JsonValueKind.Number && e.TryGetInt64(out var l) ? l : null,
            _ when target == typeof(double) => e.ValueKind == JsonValueKind.Number ? e.GetDouble() : null,
            _ when target == typeof(float) => e.ValueKind == JsonValueKind.Number ? (float)e.GetDouble() : null,
            _ when target == typeof(bool) => e.ValueKind is JsonValueKind.True or JsonValueKind.False ? e.GetBoolean() : null,
            _ when target == typeof(string) => e.ValueKind == JsonValueKind.String ? e.GetString() : null,
            _ when target == typeof(string[]) => e.ValueKind == JsonValueKind.Array && e.EnumerateArray().All(x => x.ValueKind == JsonValueKind.String)
                ? e.EnumerateArray().Select(x => x.GetString()!).ToArray() : null,
            _ when target == typeof(double[]) => e.ValueKind == JsonValueKind.Array && e.EnumerateArray().All(x => x.ValueKind == JsonValueKind.Number)
                ? e.EnumerateArray().Select(x => x.GetDouble()).ToArray() : null,
            _ => throw new ConfigException($"{Source}: key '{key}' is bound to {member} of unsupported type {typeof(T).Name}"),
        };
        if (result is null)
        {
            var shown = e.GetRawText();
            if (shown.Length > 60) shown = shown[..60] + "…";
            // A whole number too large for the property is out of range, not "not an integer".
            var whole = e.ValueKind == JsonValueKind.Number && (target == typeof(int) || target == typeof(long))
                        && e.TryGetDouble(out var d) && Math.Floor(d) == d;
            throw new ConfigException(whole
                ? $"{Source}: key '{key}' (bound to {member}) is {shown}, outside the range of a {(target == typeof(int) ? "32" : "64")}-bit integer"
                : $"{Source}: key '{key}' (bound to {member}) must be {Describe(target)}, found {shown}");
        }
        return (T)result;
    }

    private static string Describe(Type t) => t == typeof(int) || t == typeof(long) ? "an integer"
        : t == typeof(double) || t == typeof(float) ? "a number"
        : t == typeof(bool) ? "true or false"
        : t == typeof(string[]) ? "a list of strings"
        : t == typeof(double[]) ? "a list of numbers"
        : "a string";

    /// <summary>Formats a value the way config.json would spell it, for messages.</summary>
    public static string Show(object value) => value switch
    {
        double d => d.ToString("R", CultureInfo.InvariantCulture),
        float f => f.ToString("R", CultureInfo.InvariantCulture),
        bool b => b ? "true" : "false",
        _ => System.Convert.ToString(value, CultureInfo.InvariantCulture) ?? "null",
    };
}
