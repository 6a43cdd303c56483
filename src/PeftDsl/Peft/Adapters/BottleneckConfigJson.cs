using System.Text.Json;
using System.Text.Json.Nodes;
using PeftDsl.Errors;
using static PeftDsl.Peft.ConfigFields;

namespace PeftDsl.Peft.Adapters;

/// <summary>
/// The bottleneck adapter's <c>adapter_config.json</c>. peft has no such method, so its <c>peft_type</c> is our own,
/// <c>PEFTDSL_BOTTLENECK</c> (peft refuses to load it, as it should); the folder otherwise has peft's layout.
/// </summary>
public static class BottleneckConfigJson
{
    /// <summary>The <c>peft_type</c> of a bottleneck adapter folder: <c>PEFTDSL_BOTTLENECK</c>.</summary>
    public const string PeftType = "PEFTDSL_BOTTLENECK";

    /// <summary>Reads a bottleneck <c>adapter_config.json</c> object: refuses unknown fields by name and validates the result;
    /// <paramref name="source"/> names the file in errors.</summary>
    public static BottleneckConfig Parse(JsonObject json, string source)
    {
        foreach (var (key, value) in json)
            if (key is not ("peft_type" or "task_type" or "adapter_dim" or "activation" or "norm_position" or "init" or "adapter_dropout"
                    or "target_sites" or "layers_to_transform" or "placement" or "weight_tying" or "peft_version" or "base_model_name_or_path" or "inference_mode"))
                throw new PeftDslException($"{source}: \"{key}\" is not a field of a {PeftType} adapter (at {Show(value)})");
        T Enum<T>(string field, T fallback) where T : struct, System.Enum => Str(json, field, source) is not { } text ? fallback
            : System.Enum.TryParse<T>(text.Replace("_", ""), ignoreCase: true, out var v) ? v
            : throw new PeftDslException($"{source}: {field} '{text}' is not one of {string.Join(", ", System.Enum.GetNames<T>().Select(n => n.ToLowerInvariant()))}");
        return new BottleneckConfig
        {
            AdapterDim = Int(json, "adapter_dim", source) ?? throw new PeftDslException($"{source}: no \"adapter_dim\""),
            Activation = Enum("activation", BottleneckActivation.Swish),
            Norm = Enum("norm_position", BottleneckNorm.Pre),
            Init = Enum("init", BottleneckInit.Xavier),
            Dropout = Number(json, "adapter_dropout", source) ?? 0,
            Placement = Enum("placement", BottleneckPlacement.Sequential),
            TieWeights = Bool(json, "weight_tying", source) ?? false,
            Sites = Strings(json, "target_sites", source),
            Layers = json["layers_to_transform"] switch
            {
                null => null,
                JsonValue one when one.TryGetValue<int>(out var single) => [single],
                JsonArray a => a.Select(n => n is JsonValue v && v.TryGetValue<int>(out var i) ? i
                    : throw new PeftDslException($"{source}: layers_to_transform must list whole numbers")).ToList(),
                var other => throw new PeftDslException($"{source}: layers_to_transform must be a whole number or a list of them, got {Show(other)}"),
            },
            TaskType = Str(json, "task_type", source),
        }.Validate(source);
    }

    /// <summary>The config as <c>adapter_config.json</c> text: every field, sorted, indented.</summary>
    public static string Write(BottleneckConfig c) => new JsonObject
    {
        ["activation"] = c.Activation.ToString().ToLowerInvariant(),
        ["adapter_dim"] = c.AdapterDim,
        ["adapter_dropout"] = c.Dropout,
        ["base_model_name_or_path"] = null,
        ["inference_mode"] = true,
        ["init"] = c.Init.ToString().ToLowerInvariant(),
        ["layers_to_transform"] = c.Layers is { } l ? new JsonArray(l.Select(x => (JsonNode)x).ToArray()) : null,
        ["norm_position"] = c.Norm.ToString().ToLowerInvariant(),
        ["peft_type"] = PeftType,
        ["peft_version"] = "0.21.0",
        ["placement"] = c.Placement.ToString().ToLowerInvariant(),
        ["target_sites"] = c.Sites is { } s ? new JsonArray(s.Select(x => (JsonNode)x).ToArray()) : null,
        ["task_type"] = c.TaskType,
        ["weight_tying"] = c.TieWeights,
    }.ToJsonString(new JsonSerializerOptions { WriteIndented = true });

    private static IReadOnlyList<string>? Strings(JsonObject json, string field, string source) => json[field] switch
    {
        null => null,
        JsonArray a when a.All(n => n is JsonValue v && v.GetValueKind() == JsonValueKind.String) => a.Select(n => n!.GetValue<string>()).ToList(),
        var other => throw new PeftDslException($"{source}: {field} must be a list of site names, got {Show(other)}"),
    };
}
