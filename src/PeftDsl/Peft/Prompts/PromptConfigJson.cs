using System.Text.Json;
using System.Text.Json.Nodes;
using PeftDsl.Errors;

using static PeftDsl.Peft.ConfigFields;

namespace PeftDsl.Peft.Prompts;

/// <summary>
/// peft's <c>adapter_config.json</c> for PROMPT_TUNING, P_TUNING and PREFIX_TUNING (peft 0.21 field sets). Fields
/// with behaviour PeftDsl lacks are refused by name unless at their default; metadata is accepted.
/// </summary>
public static class PromptConfigJson
{
    /// <summary>peft's <c>peft_type</c> of each method: <c>PROMPT_TUNING</c>, <c>P_TUNING</c>, <c>PREFIX_TUNING</c>.</summary>
    public static readonly IReadOnlyDictionary<string, PromptMethod> PeftTypes = new Dictionary<string, PromptMethod>(StringComparer.Ordinal)
    {
        ["PROMPT_TUNING"] = PromptMethod.PromptTuning,
        ["P_TUNING"] = PromptMethod.PTuning,
        ["PREFIX_TUNING"] = PromptMethod.PrefixTuning,
    };

    /// <summary>The method's <c>peft_type</c>.</summary>
    public static string PeftType(PromptMethod method) => PeftTypes.First(p => p.Value == method).Key;

    /// <summary>Fields read for their value; everything else must be metadata or at its default.</summary>
    private static readonly HashSet<string> Read = new(StringComparer.Ordinal)
    {
        "peft_type", "task_type", "num_virtual_tokens", "token_dim", "num_transformer_submodules", "num_attention_heads",
        "num_layers", "prompt_tuning_init", "prompt_tuning_init_text", "tokenizer_name_or_path",
        "encoder_reparameterization_type", "encoder_hidden_size", "encoder_num_layers", "encoder_dropout", "prefix_projection",
        "peftdsl_encoder",
    };

    private static readonly HashSet<string> Metadata = new(StringComparer.Ordinal)
    {
        "auto_mapping", "base_model_name_or_path", "inference_mode", "peft_version", "revision", "tokenizer_kwargs", "init_weights",
    };

    /// <summary>Reads a prompt-learning <c>adapter_config.json</c> object: refuses another <c>peft_type</c> and fields set
    /// away from their default that PeftDsl does not implement, and validates the result; <paramref name="source"/> names the file in errors.</summary>
    public static PromptConfig Parse(JsonObject json, string source)
    {
        var type = Str(json, "peft_type", source) ?? throw new PeftDslException($"{source}: no \"peft_type\"");
        if (!PeftTypes.TryGetValue(type, out var method))
            throw new PeftDslException($"{source}: peft_type '{type}' is not a prompt-learning method ({string.Join(", ", PeftTypes.Keys)})");
        foreach (var (key, value) in json)
        {
            if (Read.Contains(key) || Metadata.Contains(key)) continue;
            if (key == "modules_to_save" && value is null) continue;
            throw new PeftDslException($"{source}: \"{key}\" is not supported for {type} adapters" +
                                       (key == "modules_to_save" ? " (PeftDsl trains no full modules beside an adapter)" : ""));
        }
        var init = Str(json, "prompt_tuning_init", source) switch
        {
            null or "RANDOM" => PromptInit.Random,
            "TEXT" => PromptInit.Text,
            "SAMPLE_VOCAB" => PromptInit.SampleVocab,
            var other => throw new PeftDslException($"{source}: prompt_tuning_init '{other}' is not RANDOM, TEXT or SAMPLE_VOCAB"),
        };
        var encoder = (Str(json, "peftdsl_encoder", source), Str(json, "encoder_reparameterization_type", source)) switch
        {
            ("NEMO_MLP", _) => PromptEncoderType.NemoMlp,
            (null, null or "MLP") => PromptEncoderType.Mlp,
            (null, "LSTM") => PromptEncoderType.Lstm,
            (var nemo, var other) => throw new PeftDslException(
                $"{source}: encoder type '{nemo ?? other}' is not MLP or LSTM (or peftdsl_encoder NEMO_MLP)"),
        };
        var config = new PromptConfig
        {
            Method = method,
            TaskType = Str(json, "task_type", source),
            NumVirtualTokens = Int(json, "num_virtual_tokens", source) ?? throw new PeftDslException($"{source}: no \"num_virtual_tokens\""),
            TokenDim = Int(json, "token_dim", source) ?? 0,
            NumTransformerSubmodules = Int(json, "num_transformer_submodules", source) ?? 0,
            NumAttentionHeads = Int(json, "num_attention_heads", source) ?? 0,
            NumLayers = Int(json, "num_layers", source) ?? 0,
            Init = init,
            InitText = Str(json, "prompt_tuning_init_text", source),
            TokenizerNameOrPath = Str(json, "tokenizer_name_or_path", source),
            EncoderType = encoder,
            EncoderHiddenSize = Int(json, "encoder_hidden_size", source) ?? 0,
            EncoderNumLayers = Int(json, "encoder_num_layers", source) ?? 2,
            EncoderDropout = Number(json, "encoder_dropout", source) ?? 0,
            PrefixProjection = Bool(json, "prefix_projection", source) ?? false,
        };
        config.Validate(source);
        return config;
    }

    /// <summary>The config as peft 0.21 writes it for the method (indented JSON), plus <c>peftdsl_encoder</c> for NeMo's MLP.</summary>
    public static string Write(PromptConfig c)
    {
        var json = new JsonObject
        {
            ["auto_mapping"] = null,
            ["base_model_name_or_path"] = null,
        };
        if (c.Method == PromptMethod.PTuning)
        {
            json["encoder_dropout"] = c.EncoderDropout;
            json["encoder_hidden_size"] = c.EffectiveEncoderHidden;
            json["encoder_num_layers"] = c.EncoderNumLayers;
            // peft knows MLP and LSTM; NeMo's MLP is recorded beside it (peft drops unknown fields with a warning).
            json["encoder_reparameterization_type"] = c.EncoderType == PromptEncoderType.Lstm ? "LSTM" : "MLP";
            if (c.EncoderType == PromptEncoderType.NemoMlp) json["peftdsl_encoder"] = "NEMO_MLP";
        }
        if (c.Method == PromptMethod.PrefixTuning)
        {
            json["encoder_hidden_size"] = c.EffectiveEncoderHidden;
            json["init_weights"] = null;
        }
        json["inference_mode"] = true;
        json["modules_to_save"] = null;
        json["num_attention_heads"] = c.NumAttentionHeads;
        json["num_layers"] = c.NumLayers;
        json["num_transformer_submodules"] = c.NumTransformerSubmodules;
        json["num_virtual_tokens"] = c.NumVirtualTokens;
        json["peft_type"] = PeftType(c.Method);
        json["peft_version"] = "0.21.0";
        if (c.Method == PromptMethod.PrefixTuning) json["prefix_projection"] = c.PrefixProjection;
        if (c.Method == PromptMethod.PromptTuning)
        {
            json["prompt_tuning_init"] = c.Init switch { PromptInit.Text => "TEXT", PromptInit.SampleVocab => "SAMPLE_VOCAB", _ => "RANDOM" };
            json["prompt_tuning_init_text"] = c.InitText;
        }
        json["revision"] = null;
        json["task_type"] = c.TaskType;
        json["token_dim"] = c.TokenDim;
        if (c.Method == PromptMethod.PromptTuning)
        {
            json["tokenizer_kwargs"] = null;
            json["tokenizer_name_or_path"] = c.TokenizerNameOrPath;
        }
        return json.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }
}
