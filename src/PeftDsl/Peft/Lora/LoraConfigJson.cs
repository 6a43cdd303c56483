using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using PeftDsl.Errors;

using static PeftDsl.Peft.ConfigFields;

namespace PeftDsl.Peft.Lora;

/// <summary>
/// peft's <c>adapter_config.json</c> for LoRA (peft 0.21 field set). Reading refuses, by name, every field whose
/// behaviour PeftDsl does not implement when it is set to anything but its default, so an adapter is never loaded
/// with a silently different meaning; fields without behaviour (metadata, unknown fields at a no-op value) are kept
/// and written back.
/// </summary>
public static class LoraConfigJson
{
    /// <summary>peft's <c>peft_type</c> for LoRA (DoRA included): <c>LORA</c>.</summary>
    public const string PeftType = "LORA";

    /// <summary>NeMo options peft has no field for; peft drops unknown fields with a warning, and neither changes
    /// inference.</summary>
    private const string DropoutPositionField = "peftdsl_dropout_position";
    private const string AInitField = "peftdsl_lora_A_init";
    private const string BInitField = "peftdsl_lora_B_init";

    /// <summary>peft 0.21 fields we do not implement, with the only value we accept (their default).</summary>
    private static readonly Dictionary<string, JsonNode?> UnsupportedAtDefault = new(StringComparer.Ordinal)
    {
        ["alora_invocation_tokens"] = null,
        ["arrow_config"] = null,
        ["corda_config"] = null,
        ["ensure_weight_tying"] = false,
        ["eva_config"] = null,
        ["kasa_config"] = null,
        ["layer_replication"] = null,
        ["loftq_config"] = new JsonObject(),
        ["lora_bias"] = false,
        ["lora_ga_config"] = null,
        ["megatron_config"] = null,
        ["monteclora_config"] = null,
        ["target_parameters"] = null,   // an empty list is accepted too (see IsDefault)
        ["use_bdlora"] = null,
        ["use_qalora"] = false,
        ["velora_config"] = null,
    };

    /// <summary>Fields that carry no behaviour: kept as read, written back (with peft's defaults for new configs).</summary>
    private static readonly Dictionary<string, JsonNode?> Metadata = new(StringComparer.Ordinal)
    {
        ["auto_mapping"] = null,
        ["inference_mode"] = true,
        ["megatron_core"] = "megatron.core",
        ["peft_version"] = "0.21.0",
        // Only read by QA-LoRA, which use_qalora (refused unless false) would enable.
        ["qalora_group_size"] = 16,
        ["revision"] = null,
    };

    /// <summary>Read and dropped, as peft drops them: runtime-only options (ephemeral GPU offload) never saved.</summary>
    private static readonly HashSet<string> Dropped = new(StringComparer.Ordinal) { "runtime_config" };

    private static readonly HashSet<string> Interpreted = new(StringComparer.Ordinal)
    {
        "alpha_pattern", "base_model_name_or_path", "bias", "exclude_modules", "fan_in_fan_out", "init_lora_weights",
        "layers_pattern", "layers_to_transform", "lora_alpha", "lora_dropout", "peft_type", "r", "rank_pattern",
        "target_modules", "task_type", "use_dora", "use_rslora", "trainable_token_indices", "modules_to_save", DropoutPositionField, AInitField, BInitField,
    };

    /// <summary>Reads a LoRA adapter_config.json; errors name the file and the field.</summary>
    public static LoraConfig Read(string path)
    {
        var json = ReadObject(path);
        var type = Str(json, "peft_type", path);
        if (type != PeftType) throw new PeftDslException($"{path}: peft_type is '{type}', not {PeftType}");
        return Parse(json, path);
    }

    /// <summary>The JSON object of a config file, or an error naming the file.</summary>
    public static JsonObject ReadObject(string path)
    {
        if (!File.Exists(path)) throw new PeftDslException($"{path}: adapter_config.json not found");
        try
        {
            return JsonNode.Parse(File.ReadAllText(path)) as JsonObject
                ?? throw new PeftDslException($"{path}: expected a JSON object");
        }
        catch (JsonException e)
        {
            throw new PeftDslException($"{path}: not valid JSON ({JsonErrors.Describe(e)})", e);
        }
    }

    /// <summary>Reads peft's LoRA <c>adapter_config.json</c> object into a validated config: refuses unknown fields and
    /// unsupported ones set away from their default, keeps metadata in <c>Extra</c>; <paramref name="source"/> names the file in errors.</summary>
    public static LoraConfig Parse(JsonObject json, string source)
    {
        var extra = new JsonObject();
        foreach (var (name, value) in json)
        {
            if (Interpreted.Contains(name) || Dropped.Contains(name)) continue;
            if (UnsupportedAtDefault.TryGetValue(name, out var accepted))
            {
                if (!IsDefault(value, accepted))
                    throw new PeftDslException($"{source}: '{name}' is set to {Show(value)}; PeftDsl does not implement it and refuses rather than ignore it (accepted: {Show(accepted)})");
                continue;
            }
            if (!Metadata.ContainsKey(name) && !IsNoOp(value))
                throw new PeftDslException($"{source}: unknown field '{name}' = {Show(value)}; PeftDsl refuses settings it does not know rather than ignore them");
            extra[name] = value?.DeepClone();
        }
        var bias = Str(json, "bias", source) ?? "none";
        if (bias != "none") throw new PeftDslException($"{source}: bias is '{bias}'; only 'none' is supported (the base biases stay frozen)");
        var (targets, targetPattern) = NamesOrPattern(json, "target_modules", source);
        // peft expands the string "all-linear" itself; as a list entry it is our shorthand for the same.
        if (targetPattern is { } all && all.Equals("all-linear", StringComparison.OrdinalIgnoreCase)) (targets, targetPattern) = (["all-linear"], null);
        var (excluded, excludePattern) = NamesOrPattern(json, "exclude_modules", source);
        var (tokenModule, tokenIds) = TokenIndices(json["trainable_token_indices"], source);
        return new LoraConfig
        {
            TrainableTokenIndices = tokenIds,
            TrainableTokenModule = tokenModule,
            ModulesToSave = NamesOrPattern(json, "modules_to_save", source) switch
            {
                ({ Count: > 0 } list, _) => list,
                (_, { } pattern) => throw new PeftDslException($"{source}: modules_to_save must be a list of module names, not the string '{pattern}'"),
                _ => null,
            },
            R = Int(json, "r", source) ?? 8,
            Alpha = Number(json, "lora_alpha", source) ?? 8,
            Dropout = Number(json, "lora_dropout", source) ?? 0,
            TargetModules = targets,
            TargetPattern = targetPattern,
            ExcludeModules = excluded,
            ExcludePattern = excludePattern,
            // peft: an empty layer list or pattern means no filter, not "no layer".
            LayersToTransform = Layers(json, source) is { Count: > 0 } layers ? layers : null,
            LayersPattern = NamesOrPattern(json, "layers_pattern", source) switch
            {
                ({ Count: > 0 } list, _) => list,
                (_, { Length: > 0 } one) => [one],
                _ => null,
            },
            RankPattern = Pattern(json, "rank_pattern", source).ToDictionary(p => p.Key, p => p.Value == Math.Floor(p.Value) && Math.Abs(p.Value) <= int.MaxValue
                ? (int)p.Value
                : throw new PeftDslException($"{source}: rank_pattern['{p.Key}'] must be an integer, got {p.Value.ToString(CultureInfo.InvariantCulture)}")),
            AlphaPattern = Pattern(json, "alpha_pattern", source),
            UseRsLora = Bool(json, "use_rslora", source) ?? false,
            UseDora = Bool(json, "use_dora", source) ?? false,
            FanInFanOut = Bool(json, "fan_in_fan_out", source) ?? false,
            InitLoraWeights = InitOf(json["init_lora_weights"], source),
            DropoutPosition = Str(json, DropoutPositionField, source) switch
            {
                null or "pre" => DropoutPosition.Pre,
                "post" => DropoutPosition.Post,
                var other => throw new PeftDslException($"{source}: {DropoutPositionField} is '{other}', expected 'pre' or 'post'"),
            },
            AInit = NemoInitOf(json, AInitField, source),
            BInit = NemoInitOf(json, BInitField, source),
            TaskType = Str(json, "task_type", source),
            BaseModelNameOrPath = Str(json, "base_model_name_or_path", source),
            Extra = extra,
        }.Validate(source);
    }

    /// <summary>The config as peft writes it: every peft 0.21 field, sorted, with the kept extra fields.</summary>
    /// <param name="config">Its targets already as peft must read them (see <see cref="PeftTargetNames"/>).</param>
    public static string Write(LoraConfig config)
    {
        var targets = config.TargetModules;
        var fields = new SortedDictionary<string, JsonNode?>(StringComparer.Ordinal);
        foreach (var (name, value) in UnsupportedAtDefault) fields[name] = value?.DeepClone();
        foreach (var (name, value) in Metadata) fields[name] = value?.DeepClone();
        foreach (var (name, value) in config.Extra) fields[name] = value?.DeepClone();
        fields["inference_mode"] = true;   // peft's save_pretrained always records inference mode
        fields["alpha_pattern"] = new JsonObject(config.AlphaPattern.Select(p => KeyValuePair.Create(p.Key, (JsonNode?)NumberNode(p.Value))));
        fields["base_model_name_or_path"] = config.BaseModelNameOrPath;
        fields["bias"] = "none";
        fields["exclude_modules"] = config.ExcludePattern is { } ep ? ep : config.ExcludeModules is { } em ? new JsonArray(em.Select(e => (JsonNode?)e).ToArray()) : null;
        fields["fan_in_fan_out"] = config.FanInFanOut;
        fields["init_lora_weights"] = config.InitLoraWeights switch
        {
            LoraInit.Gaussian => "gaussian",
            LoraInit.Off => false,
            _ => true,
        };
        fields["layers_pattern"] = config.LayersPattern is { } lp ? (lp.Count == 1 ? lp[0] : new JsonArray(lp.Select(p => (JsonNode?)p).ToArray())) : null;
        fields["layers_to_transform"] = config.LayersToTransform is { } layers ? new JsonArray(layers.Select(l => (JsonNode?)l).ToArray()) : null;
        fields["lora_alpha"] = NumberNode(config.Alpha);
        fields["lora_dropout"] = config.Dropout;
        fields["peft_type"] = PeftType;
        fields["r"] = config.R;
        fields["rank_pattern"] = new JsonObject(config.RankPattern.Select(p => KeyValuePair.Create(p.Key, (JsonNode?)p.Value)));
        fields["target_modules"] = config.TargetPattern is { } tp ? tp : targets is { } t ? new JsonArray(t.Select(x => (JsonNode?)x).ToArray()) : null;
        fields["task_type"] = config.TaskType;
        fields["modules_to_save"] = config.ModulesToSave is { } saved ? new JsonArray(saved.Select(m => (JsonNode?)m).ToArray()) : null;
        fields["trainable_token_indices"] = config.TrainableTokenIndices is not { } tokenIds ? null
            : config.TrainableTokenModule is { } module
                ? new JsonObject { [module] = new JsonArray(tokenIds.Select(i => (JsonNode?)i).ToArray()) }
                : new JsonArray(tokenIds.Select(i => (JsonNode?)i).ToArray());
        fields["use_dora"] = config.UseDora;
        fields["use_rslora"] = config.UseRsLora;
        if (config.DropoutPosition == DropoutPosition.Post) fields[DropoutPositionField] = "post";
        if (config.AInit is { } a) fields[AInitField] = a.ToString().ToLowerInvariant();
        if (config.BInit is { } b) fields[BInitField] = b.ToString().ToLowerInvariant();
        var root = new JsonObject(fields.Select(f => KeyValuePair.Create(f.Key, f.Value)));
        return root.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }

    /// <summary>peft's <c>trainable_token_indices</c>: a list of token ids (the input embedding), or a dict from one
    /// module name to its list. Several modules are refused by name.</summary>
    private static (string? Module, IReadOnlyList<long>? Ids) TokenIndices(JsonNode? node, string source)
    {
        static IReadOnlyList<long> Ids(JsonNode? list, string source) => list is JsonArray a && a.All(x => x is JsonValue v && v.TryGetValue<long>(out _))
            ? a.Select(x => x!.GetValue<long>()).ToList()
            : throw new PeftDslException($"{source}: trainable_token_indices must be a list of token ids or a dict from a module name to one; found {Show(list)}");
        switch (node)
        {
            case null:
                return (null, null);
            case JsonObject o when o.Count == 1:
                var (module, ids) = o.First();
                return (module, Ids(ids, source));
            case JsonObject o:
                throw new PeftDslException($"{source}: trainable_token_indices names {o.Count} modules ({string.Join(", ", o.Select(p => p.Key))}); trainable tokens on more than the input embedding (and a head tied to it) are not supported");
            default:
                return (null, Ids(node, source));
        }
    }

    // peft writes lora_alpha as the int it usually is; keep integers integral.
    private static JsonNode NumberNode(double value) =>
        value == Math.Floor(value) && Math.Abs(value) < 1e15 ? JsonValue.Create((long)value) : JsonValue.Create(value);

    /// <summary>peft treats an empty list like null for its list-valued options.</summary>
    private static bool IsDefault(JsonNode? value, JsonNode? accepted) =>
        accepted is null ? value is null || value is JsonArray { Count: 0 } : JsonNode.DeepEquals(value, accepted);

    /// <summary>Values that cannot switch a behaviour on: null, false, empty object or list.</summary>
    private static bool IsNoOp(JsonNode? value) => value switch
    {
        null => true,
        JsonObject o => o.Count == 0,
        JsonArray a => a.Count == 0,
        JsonValue v => v.GetValueKind() == JsonValueKind.False,
        _ => false,
    };

    private static LoraInit InitOf(JsonNode? value, string source) => value switch
    {
        null => LoraInit.Default,
        JsonValue v when v.GetValueKind() == JsonValueKind.True => LoraInit.Default,
        JsonValue v when v.GetValueKind() == JsonValueKind.False => LoraInit.Off,
        JsonValue v when v.GetValueKind() == JsonValueKind.String && v.GetValue<string>().Equals("gaussian", StringComparison.OrdinalIgnoreCase) => LoraInit.Gaussian,
        _ => throw new PeftDslException($"{source}: init_lora_weights = {Show(value)} is not supported (true, false or \"gaussian\"); " +
                                        "inits such as pissa, olora or loftq change the base weights"),
    };

    private static NemoInit? NemoInitOf(JsonObject json, string field, string source) => Str(json, field, source) switch
    {
        null => null,
        "xavier" => NemoInit.Xavier,
        "normal" => NemoInit.Normal,
        "kaiming" => NemoInit.Kaiming,
        "zero" => NemoInit.Zero,
        var other => throw new PeftDslException($"{source}: {field} is '{other}', expected xavier, normal, kaiming or zero"),
    };

    private static (IReadOnlyList<string>? Names, string? Pattern) NamesOrPattern(JsonObject json, string field, string source) => json[field] switch
    {
        null => (null, null),
        JsonValue v when v.GetValueKind() == JsonValueKind.String => (null, v.GetValue<string>()),
        JsonArray a => (a.Select(e => e is JsonValue s && s.GetValueKind() == JsonValueKind.String
            ? s.GetValue<string>()
            : throw new PeftDslException($"{source}: {field} must list strings")).ToList(), null),
        var other => throw new PeftDslException($"{source}: {field} must be a list of names or a regex string, got {Show(other)}"),
    };

    private static IReadOnlyList<int>? Layers(JsonObject json, string source) => json["layers_to_transform"] switch
    {
        null => null,
        JsonValue v when v.GetValueKind() == JsonValueKind.Number => [checked((int)Integral(v, "layers_to_transform", source))],
        JsonArray a => a.Select(e => e is JsonValue n && n.GetValueKind() == JsonValueKind.Number
            ? checked((int)Integral(n, "layers_to_transform", source))
            : throw new PeftDslException($"{source}: layers_to_transform must list integers")).ToList(),
        var other => throw new PeftDslException($"{source}: layers_to_transform must be an integer or a list, got {Show(other)}"),
    };

    private static Dictionary<string, double> Pattern(JsonObject json, string field, string source)
    {
        var result = new Dictionary<string, double>(StringComparer.Ordinal);
        switch (json[field])
        {
            case null:
                return result;
            case JsonObject o:
                foreach (var (key, value) in o)
                    result[key] = value is JsonValue n && n.GetValueKind() == JsonValueKind.Number
                        ? n.GetValue<double>()
                        : throw new PeftDslException($"{source}: {field}['{key}'] must be a number");
                return result;
            default:
                throw new PeftDslException($"{source}: {field} must be an object of pattern → value");
        }
    }
}
