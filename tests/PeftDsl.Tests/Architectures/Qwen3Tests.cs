using PeftDsl.Config;
using PeftDsl.Models.Qwen3;
using PeftDsl.Peft.Lora;
using Xunit;
using static TorchSharp.torch;

namespace PeftDsl.Tests.Architectures;

/// <summary>Qwen3 on the CPU against its formula, written out here op by op from transformers' modeling_qwen3.py:
/// per-head RMSNorm on queries and keys (q_norm, k_norm) before RoPE. Not yet checked against transformers itself
/// (tools/fixtures/make-arch.py has the case, to be generated on a GPU machine).</summary>
public sealed class Qwen3Tests
{
    private const string Sizes = """
        "vocab_size": 96, "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2, "head_dim": 16, "max_position_embeddings": 64, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
        "tie_word_embeddings": false
        """;

    private static Tensor Rms(Tensor x, Tensor weight) => x * rsqrt(x.pow(2).mean([-1L], keepdim: true) + 1e-6) * weight;

    private static Tensor RotateHalf(Tensor x)
    {
        var half = x.shape[^1] / 2;
        return cat([-x.narrow(-1, half, half), x.narrow(-1, 0, half)], -1);
    }

    [Fact]
    public void ForwardIsQwen3sFormulaWithQueryAndKeyNormsBeforeRope()
    {
        manual_seed(5);
        using var model = new Qwen3ForCausalLM(Qwen3Config.FromJson(ConfigJson.Parse($$"""{{{Sizes}}}""", "config.json")));
        var p = model.named_parameters().ToDictionary(x => x.name, x => (Tensor)x.parameter);
        Assert.Equal([16L], p["model.layers.0.self_attn.q_norm.weight"].shape);
        Assert.Equal([16L], p["model.layers.1.self_attn.k_norm.weight"].shape);
        Assert.DoesNotContain(p.Keys, k => k.EndsWith(".bias"));   // attention_bias defaults to false
        using var _ = no_grad();
        // Norm weights away from 1, so a norm that is skipped or applied to the wrong tensor shows.
        foreach (var (name, w) in p.Where(x => x.Key.EndsWith("norm.weight"))) w.uniform_(0.5, 1.5);

        const int T = 7, heads = 4, kvHeads = 2, headDim = 16;
        var ids = tensor(new long[] { 5, 17, 3, 90, 44, 8, 61 }).unsqueeze(0);
        var inverse = 1.0 / pow(1000000.0, arange(0, headDim, 2, ScalarType.Float64) / headDim);
        var angles = arange(T, ScalarType.Float64).unsqueeze(1) * inverse.unsqueeze(0);
        var (cos, sin) = (cat([angles, angles], -1).cos().to(ScalarType.Float32), cat([angles, angles], -1).sin().to(ScalarType.Float32));
        var causal = ones(T, T).tril().eq(0);
        var x = p["model.embed_tokens.weight"][ids];
        for (var layer = 0; layer < 2; layer++)
        {
            Tensor W(string name) => p[$"model.layers.{layer}.{name}.weight"];
            var h = Rms(x, W("input_layernorm"));
            var q = Rms(h.matmul(W("self_attn.q_proj").t()).view(1, T, heads, headDim), W("self_attn.q_norm")).transpose(1, 2);
            var k = Rms(h.matmul(W("self_attn.k_proj").t()).view(1, T, kvHeads, headDim), W("self_attn.k_norm")).transpose(1, 2);
            var v = h.matmul(W("self_attn.v_proj").t()).view(1, T, kvHeads, headDim).transpose(1, 2);
            q = q * cos + RotateHalf(q) * sin;
            k = k * cos + RotateHalf(k) * sin;
            k = k.repeat_interleave(heads / kvHeads, 1);
            v = v.repeat_interleave(heads / kvHeads, 1);
            var scores = q.matmul(k.transpose(-1, -2)) / Math.Sqrt(headDim);
            var y = scores.masked_fill(causal, double.NegativeInfinity).softmax(-1).matmul(v).transpose(1, 2).reshape(1, T, heads * headDim);
            x = x + y.matmul(W("self_attn.o_proj").t());
            h = Rms(x, W("post_attention_layernorm"));
            x = x + (nn.functional.silu(h.matmul(W("mlp.gate_proj").t())) * h.matmul(W("mlp.up_proj").t())).matmul(W("mlp.down_proj").t());
        }
        var expected = Rms(x, p["model.norm.weight"]).matmul(p["lm_head.weight"].t());
        var actual = model.Logits(ids);
        Assert.True(allclose(actual, expected, rtol: 0, atol: 2e-5), $"max |Δ| = {(actual - expected).abs().max().item<float>()}");
    }

    [Fact]
    public void HeadDimDefaultsTo128AndAttentionBiasBiasesAllFourProjections()
    {
        var config = Qwen3Config.FromJson(ConfigJson.Parse("""{"vocab_size": 8, "hidden_size": 32, "intermediate_size": 8, "num_hidden_layers": 1, "num_attention_heads": 4, "attention_bias": true}""", "config.json"));
        Assert.Equal(128, config.HeadDim);   // transformers' Qwen3Config default, not hidden / heads
        var keys = Qwen3ForCausalLM.CheckpointKeys(config).Select(k => k.Key).ToList();
        Assert.Contains("model.layers.0.self_attn.o_proj.bias", keys);
        Assert.Contains("model.layers.0.self_attn.q_norm.weight", keys);
        Assert.Equal(["q_proj", "v_proj"], LoraTargets.EffectiveTargets(new LoraConfig(), "qwen3", "adapter_config.json"));
    }
}
