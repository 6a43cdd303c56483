using PeftDsl.Config;
using PeftDsl.Errors;
using PeftDsl.Models.Phi3;
using PeftDsl.Peft.Lora;
using Xunit;
using static TorchSharp.torch;

namespace PeftDsl.Tests.Architectures;

/// <summary>Phi-3 on the CPU against its formula, written out here op by op from transformers' modeling_phi3.py: the
/// fused qkv_proj ([q | k | v]) and gate_up_proj ([gate | up]), partial rotary, and longrope (short factors within the
/// original context, long ones past it, cos and sin scaled by the attention factor). Not yet checked against
/// transformers itself (tools/fixtures/make-arch.py has the case, to be generated on a GPU machine).</summary>
public sealed class Phi3Tests
{
    private const int Hidden = 32, Heads = 4, KvHeads = 2, HeadDim = 8, RotaryDim = 4;
    private static readonly double[] ShortFactors = [1.0, 1.5], LongFactors = [3.0, 7.0];

    private static string Config(string rope) => $$"""
        {"vocab_size": 64, "hidden_size": 32, "intermediate_size": 24, "num_hidden_layers": 2, "num_attention_heads": 4,
         "num_key_value_heads": 2, "partial_rotary_factor": 0.5, "max_position_embeddings": 16, "original_max_position_embeddings": 4,
         "rope_theta": 10000.0, "rms_norm_eps": 1e-5, "tie_word_embeddings": false{{rope}}}
        """;

    private const string LongRope = """, "rope_scaling": {"type": "longrope", "short_factor": [1.0, 1.5], "long_factor": [3.0, 7.0]}""";

    private static Tensor Rms(Tensor x, Tensor weight) => x * rsqrt(x.pow(2).mean([-1L], keepdim: true) + 1e-5) * weight;

    private static Tensor RotateHalf(Tensor x)
    {
        var half = x.shape[^1] / 2;
        return cat([-x.narrow(-1, half, half), x.narrow(-1, 0, half)], -1);
    }

    /// <summary>The formula for <paramref name="ids"/> (1, T); <paramref name="factors"/> null means plain RoPE.</summary>
    private static Tensor Forward(Dictionary<string, Tensor> p, Tensor ids, double[]? factors, double attentionFactor)
    {
        var t = (int)ids.shape[1];
        var frequencies = 1.0 / pow(10000.0, arange(0, RotaryDim, 2, ScalarType.Float64) / RotaryDim);
        if (factors is not null) frequencies = frequencies / tensor(factors);
        var angles = arange(t, ScalarType.Float64).unsqueeze(1) * frequencies.unsqueeze(0);
        var cos = (cat([angles, angles], -1).cos() * attentionFactor).to(ScalarType.Float32);
        var sin = (cat([angles, angles], -1).sin() * attentionFactor).to(ScalarType.Float32);
        Tensor Rotate(Tensor x)
        {
            var rotated = x.narrow(-1, 0, RotaryDim);
            return cat([rotated * cos + RotateHalf(rotated) * sin, x.narrow(-1, RotaryDim, HeadDim - RotaryDim)], -1);
        }
        var causal = ones(t, t).tril().eq(0);
        var x = p["model.embed_tokens.weight"][ids];
        for (var layer = 0; layer < 2; layer++)
        {
            Tensor W(string name) => p[$"model.layers.{layer}.{name}.weight"];
            var h = Rms(x, W("input_layernorm"));
            var qkv = h.matmul(W("self_attn.qkv_proj").t());
            var q = Rotate(qkv.narrow(-1, 0, Heads * HeadDim).view(1, t, Heads, HeadDim).transpose(1, 2));
            var k = Rotate(qkv.narrow(-1, Heads * HeadDim, KvHeads * HeadDim).view(1, t, KvHeads, HeadDim).transpose(1, 2));
            var v = qkv.narrow(-1, (Heads + KvHeads) * HeadDim, KvHeads * HeadDim).view(1, t, KvHeads, HeadDim).transpose(1, 2);
            k = k.repeat_interleave(Heads / KvHeads, 1);
            v = v.repeat_interleave(Heads / KvHeads, 1);
            var scores = q.matmul(k.transpose(-1, -2)) / Math.Sqrt(HeadDim);
            var y = scores.masked_fill(causal, double.NegativeInfinity).softmax(-1).matmul(v).transpose(1, 2).reshape(1, t, Heads * HeadDim);
            x = x + y.matmul(W("self_attn.o_proj").t());
            h = Rms(x, W("post_attention_layernorm"));
            var gateUp = h.matmul(W("mlp.gate_up_proj").t()).chunk(2, -1);
            x = x + (nn.functional.silu(gateUp[0]) * gateUp[1]).matmul(W("mlp.down_proj").t());
        }
        return Rms(x, p["model.norm.weight"]).matmul(p["lm_head.weight"].t());
    }

    private static Dictionary<string, Tensor> Randomise(nn.Module model)
    {
        manual_seed(21);
        var p = model.named_parameters().ToDictionary(x => x.name, x => (Tensor)x.parameter);
        using var _ = no_grad();
        foreach (var w in p.Values) w.uniform_(-0.5, 0.5);
        return p;
    }

    private static void AssertClose(Tensor actual, Tensor expected)
    {
        var delta = (actual - expected).abs().max().item<float>();
        Assert.True(delta <= 1e-4, $"max |Δ| = {delta}");
    }

    [Fact]
    public void ForwardIsPhi3sFormulaWithFusedProjectionsAndPartialRotary()
    {
        using var model = new Phi3ForCausalLM(Phi3Config.FromJson(ConfigJson.Parse(Config(""), "config.json")));
        var p = Randomise(model);
        Assert.Equal([(4L + 2 * 2) * 8, 32L], p["model.layers.0.self_attn.qkv_proj.weight"].shape);
        Assert.Equal([2L * 24, 32L], p["model.layers.0.mlp.gate_up_proj.weight"].shape);
        var ids = tensor(new long[] { 5, 17, 3, 60, 44, 8, 61 }).unsqueeze(0);
        using var _ = no_grad();
        var actual = model.Logits(ids);
        AssertClose(actual, Forward(p, ids, null, 1.0));
        Assert.True((actual - Forward(p, ids, null, 1.0).flip(-1)).abs().max().item<float>() > 1e-3);
    }

    /// <summary>max_position_embeddings 16 over an original 4 makes the factor 4 and the attention factor
    /// √(1 + ln 4 / ln 4) = √2. A pass that stays within 4 positions uses the short factors; one that reaches past
    /// them uses the long ones, as transformers' longrope_frequency_update decides per forward.</summary>
    [Fact]
    public void LongRopeUsesShortFactorsWithinTheOriginalContextAndLongOnesPastIt()
    {
        using var model = new Phi3ForCausalLM(Phi3Config.FromJson(ConfigJson.Parse(Config(LongRope), "config.json")));
        var p = Randomise(model);
        using var _ = no_grad();
        var attention = Math.Sqrt(1 + Math.Log(4) / Math.Log(4));
        var shortIds = tensor(new long[] { 5, 17, 3, 60 }).unsqueeze(0);
        var longIds = tensor(new long[] { 5, 17, 3, 60, 44, 8, 61 }).unsqueeze(0);
        AssertClose(model.Logits(shortIds), Forward(p, shortIds, ShortFactors, attention));
        AssertClose(model.Logits(longIds), Forward(p, longIds, LongFactors, attention));
        Assert.True((model.Logits(longIds) - Forward(p, longIds, ShortFactors, attention)).abs().max().item<float>() > 1e-3);
        Assert.True((model.Logits(shortIds) - Forward(p, shortIds, ShortFactors, 1.0)).abs().max().item<float>() > 1e-3);
    }

    /// <summary>Cached greedy decoding that crosses the original context equals decoding without a cache (every pass
    /// recomputed: short factors up to the original context, long ones past it). transformers' Phi-3 generation drops
    /// the cache at the crossing for this; without that, the cached keys would stay rotated by the short factors.</summary>
    [Fact]
    public void CachedGenerationAcrossTheOriginalContextRecomputesWithLongFactors()
    {
        using var model = new Phi3ForCausalLM(Phi3Config.FromJson(ConfigJson.Parse(Config(LongRope), "config.json")));
        Randomise(model);
        Assert.Equal(4L, model.LongRopeFrom);
        long[][] prompts = [[5, 17, 3]];
        var options = new Generation.GenerationOptions { MaxNewTokens = 9, IgnoreMaxPositions = true };
        var cached = Generation.TextGenerator.Generate(model, prompts, options);
        var uncached = Generation.TextGenerator.Generate(model, prompts, options with { UseCache = false });
        Assert.Equal(uncached[0], cached[0]);
    }

    [Fact]
    public void BadRopeSettingsAreRefusedByName()
    {
        var e = Assert.Throws<ConfigException>(() => new Phi3ForCausalLM(Phi3Config.FromJson(ConfigJson.Parse(
            Config(""", "rope_scaling": {"type": "longrope", "short_factor": [1.0], "long_factor": [3.0, 7.0]}"""), "config.json"))));
        Assert.Contains("short_factor has 1 values and long_factor 2; both need one per rotated pair, 2", e.Message);
        e = Assert.Throws<ConfigException>(() => new Phi3ForCausalLM(Phi3Config.FromJson(ConfigJson.Parse(
            Config(""", "rope_scaling": {"type": "longrope"}"""), "config.json"))));
        Assert.Contains("rope_type 'longrope' needs short_factor and long_factor", e.Message);
        e = Assert.Throws<ConfigException>(() => Phi3Config.FromJson(ConfigJson.Parse(Config(""", "rope_scaling": {"type": "yarn", "factor": 4.0}"""), "config.json")));
        Assert.Contains("\"yarn\"", e.Message);
        e = Assert.Throws<ConfigException>(() => Phi3Config.FromJson(ConfigJson.Parse(Config(""", "embd_pdrop": 0.1"""), "config.json")));
        Assert.Contains("embd_pdrop", e.Message);
        // peft has no phi3 defaults: targets must be named, by the fused modules' names.
        Assert.Throws<PeftDslException>(() => LoraTargets.EffectiveTargets(new LoraConfig(), "phi3", "adapter_config.json"));
    }

    [Fact]
    public void LoraOnTheFusedProjectionsTrainsThemWhole()
    {
        using var model = new Phi3ForCausalLM(Phi3Config.FromJson(ConfigJson.Parse(Config(LongRope), "config.json")));
        model.Adapters.Add("a", new LoraConfig { R = 2, TargetModules = ["qkv_proj", "gate_up_proj"] });
        var lora = model.named_parameters().Where(x => x.name.Contains("lora_B")).ToDictionary(x => x.name, x => x.parameter.shape);
        Assert.Equal([64L, 2], lora["model.layers.0.self_attn.qkv_proj.lora_B.a.weight"]);
        Assert.Equal([48L, 2], lora["model.layers.1.mlp.gate_up_proj.lora_B.a.weight"]);
    }
}
