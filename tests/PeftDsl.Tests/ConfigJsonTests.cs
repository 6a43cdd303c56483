using PeftDsl.Config;
using PeftDsl.Errors;
using PeftDsl.Models.Gpt2;
using PeftDsl.Models.Llama;
using Xunit;

namespace PeftDsl.Tests;

/// <summary>The generated binders, through the stock configs.</summary>
public sealed class ConfigJsonTests
{
    private const string Gpt2Json = """{"vocab_size": 512, "n_positions": 64, "n_embd": 32, "n_layer": 2, "n_head": 4, "n_inner": null}""";

    [Fact]
    public void RequiredKeysBindAndOptionalOnesKeepTheirDefaults()
    {
        var config = Gpt2Config.FromJson(ConfigJson.Parse(Gpt2Json, "config.json"));
        Assert.Equal(32, config.Hidden);
        Assert.Null(config.InnerOverride);
        Assert.Equal(128, config.Inner);
        Assert.Equal(1e-5, config.NormEps);
        Assert.Equal("gelu_new", config.Activation);
        Assert.True(config.TieEmbeddings);
    }

    [Fact]
    public void MissingRequiredKeyNamesFileKeyAndProperty()
    {
        var e = Assert.Throws<ConfigException>(() =>
            Gpt2Config.FromJson(ConfigJson.Parse("""{"vocab_size": 512, "n_positions": 64, "n_layer": 2, "n_head": 4}""", "/m/config.json")));
        Assert.Equal("/m/config.json: missing required key 'n_embd' (bound to Gpt2Config.Hidden)", e.Message);
    }

    [Fact]
    public void WrongTypeNamesTheKeyAndTheValue()
    {
        var e = Assert.Throws<ConfigException>(() =>
            Gpt2Config.FromJson(ConfigJson.Parse(Gpt2Json.Replace("\"n_head\": 4", "\"n_head\": \"four\""), "config.json")));
        Assert.Equal("config.json: key 'n_head' (bound to Gpt2Config.Heads) must be an integer, found \"four\"", e.Message);
    }

    [Theory]
    [InlineData("scale_attn_by_inverse_layer_idx", "true", "config.json: \"scale_attn_by_inverse_layer_idx\": true is not computed by Gpt2Config.ScaleAttentionByLayer's declaration, which computes false; refusing rather than running other math")]
    [InlineData("scale_attn_weights", "false", "config.json: \"scale_attn_weights\": false is not computed by Gpt2Config.ScaleAttentionWeights's declaration, which computes true; refusing rather than running other math")]
    public void UnsupportedAttentionVariantsAreRefused(string key, string value, string message)
    {
        var json = Gpt2Json.TrimEnd('}') + $", \"{key}\": {value}}}";
        Assert.Equal(message, Assert.Throws<ConfigException>(() => Gpt2Config.FromJson(ConfigJson.Parse(json, "config.json"))).Message);
    }

    /// <summary>Keys that ask for a computation no property of the declaration binds are refused with the key, the
    /// value and the class; their plain values (and a window longer than every position) are accepted.</summary>
    [Theory]
    [InlineData("\"use_parallel_residual\": true", "\"use_parallel_residual\": true asks for a parallel residual")]
    [InlineData("\"rotary_pct\": 0.25", "\"rotary_pct\": 0.25 asks for partial rotary embeddings")]
    [InlineData("\"partial_rotary_factor\": 0.5", "\"partial_rotary_factor\": 0.5 asks for partial rotary embeddings")]
    [InlineData("\"sliding_window\": 4", "\"sliding_window\": 4 asks for sliding-window attention")]
    [InlineData("\"alibi\": true", "\"alibi\": true asks for ALiBi position biases")]
    [InlineData("\"attention_dropout\": 0.1", "\"attention_dropout\": 0.1 asks for dropout on the attention probabilities in training")]
    [InlineData("\"dropout_rate\": 0.1", "\"dropout_rate\": 0.1 asks for dropout on the embeddings, attention and sublayer outputs in training")]
    [InlineData("\"attention_dropout\": 0.0, \"hidden_dropout\": null", null)]
    [InlineData("\"use_parallel_residual\": false", null)]
    [InlineData("\"rotary_pct\": 1.0", null)]
    [InlineData("\"sliding_window\": 4096", null)]
    [InlineData("\"sliding_window\": 4, \"use_sliding_window\": false", null)]
    [InlineData("\"sliding_window\": null", null)]
    public void KeysTheDeclarationDoesNotComputeAreRefused(string extra, string? message)
    {
        var json = Gpt2Json.TrimEnd('}') + ", " + extra + "}";
        if (message is null)
        {
            Gpt2Config.FromJson(ConfigJson.Parse(json, "config.json"));
            return;
        }
        var e = Assert.Throws<ConfigException>(() => Gpt2Config.FromJson(ConfigJson.Parse(json, "config.json")));
        Assert.StartsWith("config.json: " + message, e.Message);
        Assert.Contains("which Gpt2Config's declaration does not compute", e.Message);
    }

    /// <summary>Llama 3's rope scaling is computed (its four keys bound); a rope type the declaration does not compute
    /// (yarn) is refused at bind, and llama3 without its factors is refused when the model is built.</summary>
    [Fact]
    public void RopeTypesAreComputedOrRefused()
    {
        const string sizes = "\"vocab_size\": 512, \"hidden_size\": 32, \"intermediate_size\": 64, \"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"max_position_embeddings\": 64";
        var llama3 = Models.Llama.LlamaConfig.FromJson(ConfigJson.Parse("{" + sizes + """, "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}}""", "config.json"));
        Assert.Equal(("llama3", 8.0, 8192.0), (llama3.RopeType, llama3.RopeFactor, llama3.RopeOriginalMaxPositions));

        var e = Assert.Throws<ConfigException>(() => Models.Llama.LlamaConfig.FromJson(ConfigJson.Parse("{" + sizes + """, "rope_scaling": {"rope_type": "yarn", "factor": 4.0}}""", "config.json")));
        Assert.StartsWith("config.json: \"rope_scaling.rope_type\": \"yarn\" is not computed by LlamaConfig.RopeType's declaration", e.Message);

        var bare = Models.Llama.LlamaConfig.FromJson(ConfigJson.Parse("{" + sizes + """, "rope_parameters": {"rope_type": "llama3", "rope_theta": 10000.0}}""", "config.json"));
        e = Assert.Throws<ConfigException>(() => new Models.Llama.LlamaForCausalLM(bare));
        Assert.Contains("rope_type 'llama3' needs factor > 0", e.Message);
    }

    /// <summary>A declaration that applies sliding_window (Mistral's binds it) refuses a config whose
    /// use_sliding_window (Qwen2's switch) turns the window off, rather than applying it anyway.</summary>
    [Fact]
    public void AWindowTheConfigSwitchesOffIsRefusedWhereTheDeclarationAppliesIt()
    {
        const string sizes = "\"vocab_size\": 64, \"hidden_size\": 32, \"intermediate_size\": 64, \"num_hidden_layers\": 1, \"num_attention_heads\": 4, \"max_position_embeddings\": 64";
        var e = Assert.Throws<ConfigException>(() => Models.Mistral.MistralConfig.FromJson(ConfigJson.Parse("{" + sizes + ", \"sliding_window\": 8, \"use_sliding_window\": false}", "config.json")));
        Assert.StartsWith("config.json: \"use_sliding_window\": false switches the window off, but MistralConfig's declaration applies sliding_window", e.Message);
        Assert.Equal(8, Models.Mistral.MistralConfig.FromJson(ConfigJson.Parse("{" + sizes + ", \"sliding_window\": 8, \"use_sliding_window\": true}", "config.json")).SlidingWindow);
    }

    [Fact]
    public void AWholeNumberTooLargeIsOutOfRangeNotNotAnInteger()
    {
        var e = Assert.Throws<ConfigException>(() =>
            Gpt2Config.FromJson(ConfigJson.Parse(Gpt2Json.Replace("\"n_head\": 4", "\"n_head\": 1000000000000"), "config.json")));
        Assert.Equal("config.json: key 'n_head' (bound to Gpt2Config.Heads) is 1000000000000, outside the range of a 32-bit integer", e.Message);
    }

    [Fact]
    public void FractionalSizeIsRejected()
    {
        var e = Assert.Throws<ConfigException>(() =>
            Gpt2Config.FromJson(ConfigJson.Parse(Gpt2Json.Replace("\"n_head\": 4", "\"n_head\": 4.5"), "config.json")));
        Assert.Contains("must be an integer", e.Message);
    }

    [Theory]
    [InlineData("""{"rope_parameters": {"rope_theta": 500000.0, "rope_type": "default"}}""", 500000.0)]
    [InlineData("""{"rope_theta": 250000.0}""", 250000.0)]
    [InlineData("""{}""", 10000.0)]
    public void DottedKeysFallBackInOrder(string extra, double theta)
    {
        var json = System.Text.Json.Nodes.JsonNode.Parse(extra)!.AsObject();
        foreach (var (key, value) in new Dictionary<string, int>
                 { ["vocab_size"] = 8, ["hidden_size"] = 8, ["intermediate_size"] = 8, ["num_hidden_layers"] = 1, ["num_attention_heads"] = 2 })
            json[key] = value;
        var config = LlamaConfig.FromJson(ConfigJson.Parse(json.ToJsonString(), "config.json"));
        Assert.Equal(theta, config.RopeTheta);
        Assert.Equal(2, config.KvHeads);
        Assert.Equal(4, config.HeadDim);
    }

    [Theory]
    [InlineData("not json", "not valid JSON")]
    [InlineData("[1]", "expected a JSON object")]
    // Counted as editors count (from 1): a comma missing at the end of line 2 is found at line 3, column 3.
    [InlineData("{\n  \"vocab_size\": 10\n  \"n_embd\": 8\n}", "not valid JSON (line 3, column 3: '\"' is invalid after a value. Expected either ',', '}', or ']')")]
    public void MalformedJsonIsAClearError(string text, string message)
    {
        var e = Assert.Throws<ConfigException>(() => ConfigJson.Parse(text, "config.json"));
        Assert.Contains(message, e.Message);
        Assert.StartsWith("config.json: ", e.Message);
    }
}
