using PeftDsl.Config;
using PeftDsl.Errors;
using PeftDsl.Models.Gemma2;
using PeftDsl.Models.Gemma3;
using PeftDsl.Peft.Ia3;
using PeftDsl.Peft.Lora;
using PeftDsl.Peft.Prompts;
using Xunit;
using static TorchSharp.torch;

namespace PeftDsl.Tests.Architectures;

/// <summary>Gemma 2 and Gemma 3 (text) on the CPU against their formulas, written out here op by op from transformers'
/// modeling_gemma2.py and modeling_gemma3.py. Each test also computes the formula without the piece it is about and
/// checks that this differs, so a piece the model skipped would fail. Not yet checked against transformers itself
/// (tools/fixtures/make-arch.py has the cases, to be generated on a GPU machine).</summary>
public sealed class GemmaTests
{
    private const int T = 7, Hidden = 32, Heads = 4, KvHeads = 2, HeadDim = 16;

    /// <summary>The formula's knobs: each can be switched off to show that the model computes it.</summary>
    private sealed record Shape(int Layers, Func<int, bool> Sliding, int Window, double QueryScalar, double AttnCap, double FinalCap,
        bool HeadNorms, Func<int, (Tensor Cos, Tensor Sin)> Rope, bool PostNorms = true);

    private static Tensor GemmaNorm(Tensor x, Tensor weight) => x * rsqrt(x.pow(2).mean([-1L], keepdim: true) + 1e-6) * (1 + weight);

    private static Tensor RotateHalf(Tensor x)
    {
        var half = x.shape[^1] / 2;
        return cat([-x.narrow(-1, half, half), x.narrow(-1, 0, half)], -1);
    }

    /// <summary>cos and sin (T, head_dim) for positions 0… with base θ, positions divided by <paramref name="factor"/> (linear).</summary>
    private static (Tensor Cos, Tensor Sin) Rope(double theta, double factor = 1)
    {
        var inverse = 1.0 / pow(theta, arange(0, HeadDim, 2, ScalarType.Float64) / HeadDim) / factor;
        var angles = arange(T, ScalarType.Float64).unsqueeze(1) * inverse.unsqueeze(0);
        return (cat([angles, angles], -1).cos().to(ScalarType.Float32), cat([angles, angles], -1).sin().to(ScalarType.Float32));
    }

    /// <summary>(T, T) true where query i may see key j: causal, and within the window when there is one.</summary>
    private static Tensor Allowed(int window)
    {
        var i = arange(T).unsqueeze(1);
        var j = arange(T).unsqueeze(0);
        var allowed = j.le(i);
        return window > 0 ? allowed & (i - j).lt(window) : allowed;
    }

    /// <summary>Gemma's decoder and head on input embeddings <paramref name="x"/> (1, T, C), already scaled.</summary>
    private static Tensor Forward(Dictionary<string, Tensor> p, Tensor x, Shape s)
    {
        for (var layer = 0; layer < s.Layers; layer++)
        {
            Tensor W(string name) => p[$"model.layers.{layer}.{name}.weight"];
            Tensor Post(Tensor y, string norm) => s.PostNorms ? GemmaNorm(y, W(norm)) : y;
            var h = GemmaNorm(x, W("input_layernorm"));
            var q = h.matmul(W("self_attn.q_proj").t()).view(1, T, Heads, HeadDim);
            var k = h.matmul(W("self_attn.k_proj").t()).view(1, T, KvHeads, HeadDim);
            var v = h.matmul(W("self_attn.v_proj").t()).view(1, T, KvHeads, HeadDim).transpose(1, 2);
            if (s.HeadNorms) (q, k) = (GemmaNorm(q, W("self_attn.q_norm")), GemmaNorm(k, W("self_attn.k_norm")));
            (q, k) = (q.transpose(1, 2), k.transpose(1, 2));
            var (cos, sin) = s.Rope(layer);
            q = q * cos + RotateHalf(q) * sin;
            k = (k * cos + RotateHalf(k) * sin).repeat_interleave(Heads / KvHeads, 1);
            v = v.repeat_interleave(Heads / KvHeads, 1);
            var scores = q.matmul(k.transpose(-1, -2)) * Math.Pow(s.QueryScalar, -0.5);
            if (s.AttnCap > 0) scores = (scores / s.AttnCap).tanh() * s.AttnCap;
            var allowed = Allowed(s.Sliding(layer) ? s.Window : 0);
            var y = scores.masked_fill(allowed.logical_not(), double.NegativeInfinity).softmax(-1).matmul(v).transpose(1, 2).reshape(1, T, Heads * HeadDim);
            x = x + Post(y.matmul(W("self_attn.o_proj").t()), "post_attention_layernorm");
            h = GemmaNorm(x, W("pre_feedforward_layernorm"));
            var gate = nn.functional.gelu(h.matmul(W("mlp.gate_proj").t()), TorchSharp.Modules.GELU.Approximate.tanh);
            x = x + Post((gate * h.matmul(W("mlp.up_proj").t())).matmul(W("mlp.down_proj").t()), "post_feedforward_layernorm");
        }
        var logits = GemmaNorm(x, p["model.norm.weight"]).matmul(p["model.embed_tokens.weight"].t());   // tied
        return s.FinalCap > 0 ? (logits / s.FinalCap).tanh() * s.FinalCap : logits;
    }

    /// <summary>Every parameter drawn from U(−0.5, 0.5): large enough that soft-capping, the norms' (1 + w) and the window
    /// all change the logits measurably.</summary>
    private static Dictionary<string, Tensor> Randomise(nn.Module model, int seed)
    {
        manual_seed(seed);
        var p = model.named_parameters().ToDictionary(x => x.name, x => (Tensor)x.parameter);
        using var _ = no_grad();
        foreach (var w in p.Values) w.uniform_(-0.5, 0.5);
        return p;
    }

    private static readonly Tensor Ids = tensor(new long[] { 5, 17, 3, 60, 44, 8, 61 }).unsqueeze(0);

    private static void AssertClose(Tensor actual, Tensor expected, double tolerance = 1e-4)
    {
        var delta = (actual - expected).abs().max().item<float>();
        Assert.True(delta <= tolerance, $"max |Δ| = {delta}");
    }

    private static void AssertDiffers(Tensor actual, Tensor control, string piece) =>
        Assert.True((actual - control).abs().max().item<float>() > 1e-3, $"the formula without {piece} gives the same logits: the test would not see it missing");

    private const string Gemma2Sizes = """
        "vocab_size": 64, "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2, "head_dim": 16, "query_pre_attn_scalar": 24, "sliding_window": 3,
        "attn_logit_softcapping": 2.0, "final_logit_softcapping": 3.0, "rope_theta": 10000.0
        """;

    [Fact]
    public void Gemma2ForwardIsItsFormula()
    {
        using var model = new Gemma2ForCausalLM(Gemma2Config.FromJson(ConfigJson.Parse($$"""{{{Gemma2Sizes}}}""", "config.json")));
        var p = Randomise(model, 11);
        Assert.Contains("model.layers.1.post_feedforward_layernorm.weight", p.Keys);
        Assert.DoesNotContain("lm_head.weight", p.Keys);   // tied by default
        var shape = new Shape(2, layer => layer % 2 == 0, 3, 24, 2.0, 3.0, false, _ => Rope(10000));
        var input = p["model.embed_tokens.weight"][Ids] * Math.Sqrt(Hidden);

        using var _ = no_grad();
        var actual = model.Logits(Ids);
        AssertClose(actual, Forward(p, input, shape));
        AssertDiffers(actual, Forward(p, input, shape with { AttnCap = 0 }), "attention soft-capping");
        AssertDiffers(actual, Forward(p, input, shape with { FinalCap = 0 }), "final soft-capping");
        AssertDiffers(actual, Forward(p, input, shape with { Sliding = _ => false }), "the sliding window");
        AssertDiffers(actual, Forward(p, input, shape with { Sliding = _ => true }), "the global layers");
        AssertDiffers(actual, Forward(p, input, shape with { QueryScalar = HeadDim }), "query_pre_attn_scalar");
        AssertDiffers(actual, Forward(p, input, shape with { PostNorms = false }), "the post-norms");
        AssertDiffers(actual, Forward(p, p["model.embed_tokens.weight"][Ids], shape), "the √hidden embedding scale");
    }

    [Fact]
    public void Gemma2GradientsAreTheFormulas()
    {
        using var model = new Gemma2ForCausalLM(Gemma2Config.FromJson(ConfigJson.Parse($$"""{{{Gemma2Sizes}}}""", "config.json")));
        var p = Randomise(model, 12);
        var shape = new Shape(2, layer => layer % 2 == 0, 3, 24, 2.0, 3.0, false, _ => Rope(10000));
        var probe = randn(new long[] { 1, T, 64 });
        var grads = new List<Tensor[]>();
        foreach (var run in new Func<Tensor>[] { () => model.Logits(Ids), () => Forward(p, p["model.embed_tokens.weight"][Ids] * Math.Sqrt(Hidden), shape) })
        {
            model.zero_grad();
            (run() * probe).sum().backward();
            grads.Add(p.Values.Select(w => w.grad!.clone()).ToArray());
        }
        for (var i = 0; i < grads[0].Length; i++) AssertClose(grads[0][i], grads[1][i], 2e-4);
    }

    [Fact]
    public void Gemma3ForwardIsItsFormula()
    {
        // Four layers, one global in two; the global layers' tables scaled linearly, the sliding ones on their own θ.
        using var model = new Gemma3ForCausalLM(Gemma3Config.FromJson(ConfigJson.Parse("""
            {"vocab_size": 64, "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 4, "num_attention_heads": 4,
             "num_key_value_heads": 2, "head_dim": 16, "query_pre_attn_scalar": 24, "sliding_window": 3, "sliding_window_pattern": 2,
             "rope_theta": 1000000.0, "rope_local_base_freq": 10.0, "rope_scaling": {"rope_type": "linear", "factor": 4.0},
             "attn_logit_softcapping": null, "final_logit_softcapping": null}
            """, "config.json")));
        var p = Randomise(model, 13);
        Assert.Equal([16L], p["model.layers.3.self_attn.k_norm.weight"].shape);
        var shape = new Shape(4, layer => layer % 2 == 0, 3, 24, 0, 0, true, layer => layer % 2 == 0 ? Rope(10) : Rope(1000000, 4));
        var input = p["model.embed_tokens.weight"][Ids] * Math.Sqrt(Hidden);

        using var _ = no_grad();
        var actual = model.Logits(Ids);
        AssertClose(actual, Forward(p, input, shape));
        AssertDiffers(actual, Forward(p, input, shape with { HeadNorms = false }), "q_norm and k_norm");
        AssertDiffers(actual, Forward(p, input, shape with { Rope = _ => Rope(1000000, 4) }), "the sliding layers' own θ");
        AssertDiffers(actual, Forward(p, input, shape with { Rope = layer => layer % 2 == 0 ? Rope(10) : Rope(1000000) }), "linear scaling on the global layers");
        AssertDiffers(actual, Forward(p, input, shape with { Sliding = layer => layer % 3 != 2 }), "sliding_window_pattern");
    }

    /// <summary>Prompt tuning meets the two scalings as peft on transformers does: Gemma 2 scales whatever enters the model,
    /// virtual tokens included; Gemma 3's embedding scales only the token rows, so its virtual tokens enter as they are,
    /// and a TEXT initialisation (peft calls the embedding module) starts from scaled rows.</summary>
    [Fact]
    public void VirtualTokensAreScaledByGemma2AndNotByGemma3()
    {
        var init = new long[] { 9, 30 };
        using (var gemma2 = new Gemma2ForCausalLM(Gemma2Config.FromJson(ConfigJson.Parse($$"""{{{Gemma2Sizes}}}""", "config.json"))))
        {
            var p = Randomise(gemma2, 14);
            gemma2.Prompts.Add("task", new PromptConfig { Method = PromptMethod.PromptTuning, NumVirtualTokens = 2, Init = PromptInit.Text, InitText = "two tokens" }, init);
            gemma2.Prompts.SetActive("task");
            using var _ = no_grad();
            var rows = gemma2.Prompts.Rows("task");
            AssertClose(rows, p["model.embed_tokens.weight"][tensor(init)], 0);
            var ids = Ids.narrow(1, 0, T - 2);
            var input = cat([rows.unsqueeze(0), p["model.embed_tokens.weight"][ids]], 1) * Math.Sqrt(Hidden);
            var shape = new Shape(2, layer => layer % 2 == 0, 3, 24, 2.0, 3.0, false, _ => Rope(10000));
            AssertClose(gemma2.Logits(ids), Forward(p, input, shape));
        }
        using (var gemma3 = new Gemma3ForCausalLM(Gemma3Config.FromJson(ConfigJson.Parse("""
            {"hidden_size": 32, "vocab_size": 64, "intermediate_size": 48, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
             "head_dim": 16, "query_pre_attn_scalar": 16, "sliding_window": 3, "sliding_window_pattern": 2, "rope_local_base_freq": 10000.0}
            """, "config.json"))))
        {
            var p = Randomise(gemma3, 15);
            gemma3.Prompts.Add("task", new PromptConfig { Method = PromptMethod.PromptTuning, NumVirtualTokens = 2, Init = PromptInit.Text, InitText = "two tokens" }, init);
            gemma3.Prompts.SetActive("task");
            using var _ = no_grad();
            var rows = gemma3.Prompts.Rows("task");
            AssertClose(rows, p["model.embed_tokens.weight"][tensor(init)] * Math.Sqrt(Hidden), 1e-6);
            var ids = Ids.narrow(1, 0, T - 2);
            var input = cat([rows.unsqueeze(0), p["model.embed_tokens.weight"][ids] * Math.Sqrt(Hidden)], 1);
            var shape = new Shape(2, layer => layer % 2 == 0, 3, 16, 0, 0, true, layer => Rope(layer % 2 == 0 ? 10000 : 1000000));
            AssertClose(gemma3.Logits(ids), Forward(p, input, shape));
        }
    }

    [Fact]
    public void GemmaNormComputesInFp32AndScalesByOnePlusWeight()
    {
        using var norm = new Modules.GemmaRmsNorm(8, 1e-6);
        Assert.True(norm.weight.abs().sum().item<float>() == 0);   // a fresh norm scales by one
        using (no_grad()) norm.weight.uniform_(-1, 1);
        var x = randn(new long[] { 3, 8 }).to(ScalarType.BFloat16);
        var x32 = x.to(ScalarType.Float32);
        var expected = (x32 * rsqrt(x32.pow(2).mean([-1L], keepdim: true) + 1e-6) * (1 + norm.weight)).to(ScalarType.BFloat16);
        Assert.True(norm.forward(x).allclose(expected, 0, 0), "not (x × (1 + w)) in fp32, cast once");
        // Llama's order (cast, then multiply in bf16) rounds differently: the test can tell them apart.
        var llamaOrder = (x32 * rsqrt(x32.pow(2).mean([-1L], keepdim: true) + 1e-6)).to(ScalarType.BFloat16) * (1 + norm.weight).to(ScalarType.BFloat16);
        Assert.False(llamaOrder.allclose(expected, 0, 0));
        var input = randn(new long[] { 3, 8 });
        norm.forward(input).sum().backward();
        // d/dw of Σ x̂ × (1 + w) is Σ over rows of x̂.
        var expectedGrad = (input * rsqrt(input.pow(2).mean([-1L], keepdim: true) + 1e-6)).sum([0L]);
        AssertClose(norm.weight.grad!, expectedGrad, 1e-5);
    }

    [Fact]
    public void ConfigsReadTransformersDefaultsNullsAndLayouts()
    {
        const string sizes = """ "vocab_size": 64, "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 3, "num_attention_heads": 4 """;
        var defaults = Gemma2Config.FromJson(ConfigJson.Parse($$"""{{{sizes}}}""", "config.json"));
        Assert.Equal((50.0, 30.0, 4096, 256), (defaults.AttnSoftcap, defaults.FinalSoftcap, defaults.SlidingWindow, defaults.HeadDim));
        Assert.Equal(["sliding_attention", "full_attention", "sliding_attention"], defaults.LayerTypes);
        // An explicit null is transformers' None: no capping, no window; an absent key keeps the default.
        var nulls = Gemma2Config.FromJson(ConfigJson.Parse($$"""{{{sizes}}, "attn_logit_softcapping": null, "final_logit_softcapping": null, "sliding_window": null}""", "config.json"));
        Assert.Equal((0.0, 0.0, 0), (nulls.AttnSoftcap, nulls.FinalSoftcap, nulls.SlidingWindow));

        var gemma3 = Gemma3Config.FromJson(ConfigJson.Parse($$"""{"hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 7, "num_attention_heads": 4}""", "config.json"));
        Assert.Equal(262208, gemma3.VocabSize);
        Assert.Equal([true, true, true, true, true, false, true], gemma3.LayerTypes.Select(t => t == "sliding_attention"));
        // transformers 5.x writes rope_parameters keyed by layer type.
        var nested = Gemma3Config.FromJson(ConfigJson.Parse("""
            {"hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2, "num_attention_heads": 4, "layer_types": ["sliding_attention", "full_attention"],
             "rope_parameters": {"full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1000000.0}, "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0}}}
            """, "config.json"));
        Assert.Equal(("linear", 8.0, 1000000.0, 10000.0), (nested.RopeType, nested.RopeFactor, nested.RopeTheta, nested.LocalRopeTheta));

        var e = Assert.Throws<ConfigException>(() => Gemma2Config.FromJson(ConfigJson.Parse($$"""{{{sizes}}, "layer_types": ["full_attention"]}""", "config.json")));
        Assert.Equal("config.json: \"layer_types\" has 1 entries, but num_hidden_layers is 3", e.Message);
        var chunked = Gemma2Config.FromJson(ConfigJson.Parse($$"""{{{sizes}}, "layer_types": ["full_attention", "chunked_attention", "full_attention"]}""", "config.json"));
        e = Assert.Throws<ConfigException>(() => new Gemma2ForCausalLM(chunked));
        Assert.Contains("[1] is \"chunked_attention\"; computed are \"full_attention\" and \"sliding_attention\"", e.Message);
        e = Assert.Throws<ConfigException>(() => Gemma2Config.FromJson(ConfigJson.Parse($$$"""{{{{sizes}}}, "rope_scaling": {"rope_type": "dynamic", "factor": 2.0}}""", "config.json")));
        Assert.Contains("\"dynamic\"", e.Message);
        e = Assert.Throws<ConfigException>(() => Gemma3Config.FromJson(ConfigJson.Parse("""{"hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2, "num_attention_heads": 4, "use_bidirectional_attention": true}""", "config.json")));
        Assert.Contains("use_bidirectional_attention", e.Message);
        var local = Gemma3Config.FromJson(ConfigJson.Parse("""{"hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2, "num_attention_heads": 4, "head_dim": 8, "rope_local_base_freq": 0}""", "config.json"));
        e = Assert.Throws<ConfigException>(() => new Gemma3ForCausalLM(local with { VocabSize = 16 }));
        Assert.Equal("Gemma3Model: rope_local_base_freq must be positive, got 0", e.Message);
    }

    [Fact]
    public void PeftDefaultsAreTheMappingsOfPeft()
    {
        Assert.Equal(["q_proj", "v_proj"], LoraTargets.EffectiveTargets(new LoraConfig(), "gemma2", "adapter_config.json"));
        Assert.Equal(["q_proj", "v_proj"], LoraTargets.EffectiveTargets(new LoraConfig(), "gemma3_text", "adapter_config.json"));
        Assert.Throws<PeftDslException>(() => LoraTargets.EffectiveTargets(new LoraConfig(), "phi3", "adapter_config.json"));
    }
}
