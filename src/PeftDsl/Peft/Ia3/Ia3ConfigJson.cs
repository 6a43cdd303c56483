using System.Text.Json;
using System.Text.Json.Nodes;
using PeftDsl.Errors;
using static PeftDsl.Peft.ConfigFields;

namespace PeftDsl.Peft.Ia3;

/// <summary>peft's <c>adapter_config.json</c> for IA3 (peft 0.21's field set); unsupported fields are refused by
/// name unless at their default.</summary>
public static class Ia3ConfigJson
{
    /// <summary>peft's <c>peft_type</c> for IA3: <c>IA3</c>.</summary>
    public const string PeftType = "IA3";

    /// <summary>Our key for NeMo's placement. peft drops keys it does not know (with a warning) and loads the vectors,
    /// which are stored whole with ones outside NeMo's columns, so it computes the same.</summary>
    public const string PlacementKey = "peftdsl_ia3_placement";

    private static readonly HashSet<string> Metadata = new(StringComparer.Ordinal)
    {
        "auto_mapping", "base_model_name_or_path", "inference_mode", "peft_version", "revision", "fan_in_fan_out",
    };

    /// <summary>Reads peft's IA3 <c>adapter_config.json</c> object: refuses another <c>peft_type</c> and unsupported fields set
    /// away from their default, and validates the result; <paramref name="source"/> names the file in errors.</summary>
    public static Ia3Config Parse(JsonObject json, string source)
    {
        if (Str(json, "peft_type", source) is var type && type != PeftType)
            throw new PeftDslException($"{source}: peft_type is '{type ?? "missing"}', not {PeftType}");
        foreach (var (key, value) in json)
        {
            if (key is "peft_type" or "task_type" or "target_modules" or "feedforward_modules" or "exclude_modules" or "init_ia3_weights" or PlacementKey
                || Metadata.Contains(key)) continue;
            if (key == "modules_to_save" && value is null) continue;
            if (key == "layers_to_transform" && value is null) continue;
            if (key == "layers_pattern" && value is null) continue;
            throw new PeftDslException($"{source}: \"{key}\" is not supported for IA3 adapters (at {Show(value)})");
        }
        var (targets, targetPattern) = ListOrPattern(json, "target_modules", source);
        var (ff, ffPattern) = ListOrPattern(json, "feedforward_modules", source);
        var (excluded, excludedPattern) = ListOrPattern(json, "exclude_modules", source);
        if (excludedPattern is not null) throw new PeftDslException($"{source}: exclude_modules as a pattern is not supported; list the modules");
        return new Ia3Config
        {
            TargetModules = targets,
            TargetPattern = targetPattern,
            FeedforwardModules = ff,
            FeedforwardPattern = ffPattern,
            ExcludeModules = excluded,
            InitIa3Weights = Bool(json, "init_ia3_weights", source) ?? true,
            TaskType = Str(json, "task_type", source),
            FanInFanOut = Bool(json, "fan_in_fan_out", source) ?? false,
            Placement = Str(json, PlacementKey, source) switch
            {
                null or "peft" => Ia3Placement.Peft,
                "nemo" => Ia3Placement.Nemo,
                var other => throw new PeftDslException($"{source}: {PlacementKey} is '{other}'; it is peft or nemo"),
            },
        }.Validate(source);
    }

    /// <summary>The config as peft 0.21 writes it (indented JSON), plus <c>peftdsl_ia3_placement</c> for NeMo's placement.</summary>
    public static string Write(Ia3Config c)
    {
        var json = new JsonObject
        {
            ["auto_mapping"] = null,
            ["base_model_name_or_path"] = null,
            ["exclude_modules"] = c.ExcludeModules is { } e ? new JsonArray(e.Select(x => (JsonNode)x).ToArray()) : null,
            ["fan_in_fan_out"] = c.FanInFanOut,
            ["feedforward_modules"] = c.FeedforwardPattern is { } fp ? fp : c.FeedforwardModules is { } f ? new JsonArray(f.Select(x => (JsonNode)x).ToArray()) : null,
            ["inference_mode"] = true,
            ["init_ia3_weights"] = c.InitIa3Weights,
            ["modules_to_save"] = null,
            ["peft_type"] = PeftType,
            ["peft_version"] = "0.21.0",
            ["revision"] = null,
            ["target_modules"] = c.TargetPattern is { } tp ? tp : c.TargetModules is { } t ? new JsonArray(t.Select(x => (JsonNode)x).ToArray()) : null,
            ["task_type"] = c.TaskType,
        };
        if (c.Placement == Ia3Placement.Nemo) json[PlacementKey] = "nemo";
        return json.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }

    /// <summary>peft takes a list of names or one regular expression.</summary>
    private static (IReadOnlyList<string>? List, string? Pattern) ListOrPattern(JsonObject json, string field, string source) => json[field] switch
    {
        null => (null, null),
        JsonValue v when v.GetValueKind() == JsonValueKind.String => (null, v.GetValue<string>()),
        JsonArray a when a.All(n => n is JsonValue x && x.GetValueKind() == JsonValueKind.String) => (a.Select(n => n!.GetValue<string>()).ToList(), null),
        var other => throw new PeftDslException($"{source}: {field} must be a list of module names or a pattern, got {Show(other)}"),
    };
}
