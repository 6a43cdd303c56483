using PeftDsl.Runtime;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace PeftDsl.Tests.Architectures;

/// <summary>
/// The DSL's parallel residual with one shared norm, the grouped interleaved fused QKV, partial rotary and the sliding
/// window, each against the same network composed by hand from plain TorchSharp ops on the same weights: logits and
/// every gradient. (GPT-NeoX's two-norm parallel form, its per-head layout, Mistral's window and Llama 3's rope are
/// checked against transformers itself: tests/fixtures/hf-arch.)
/// </summary>
[Collection(GlobalRandomness.Name)]
public sealed class HandComposedTests
{
    private static ParallelConfig Config(int window = 0) => new()
    {
        VocabSize = 64, Hidden = 32, Layers = 2, Heads = 4, KvHeads = 2, RotaryFraction = 0.5, SlidingWindow = window,
    };

    [Theory]
    [InlineData(0)]
    [InlineData(3)]
    public void LogitsAndGradientsEqualTheHandComposedNetwork(int window)
    {
        manual_seed(21);
        var config = Config(window);
        using var model = new ParallelForCausalLM(config);
        using var scope = NewDisposeScope();
        var ids = randint(0, config.VocabSize, [2, 9], dtype: ScalarType.Int64);
        var weights = randn(2, 9, config.VocabSize);

        var ours = model.Forward(ids).Logits;
        (ours * weights).sum().backward();
        var ourGrads = model.named_parameters().ToDictionary(p => p.name, p => p.parameter.grad!.clone());
        model.zero_grad();

        var p = model.named_parameters().ToDictionary(x => x.name, x => (Tensor)x.parameter);
        var reference = Reference(p, ids, config);
        (reference * weights).sum().backward();

        Assert.True(ours.allclose(reference, rtol: 0, atol: 1e-5), $"logits differ by {(ours - reference).abs().max().item<float>()}");
        foreach (var (name, parameter) in p)
            Assert.True(ourGrads[name].allclose(parameter.grad!, rtol: 1e-4, atol: 1e-5), $"gradient of {name}: {(ourGrads[name] - parameter.grad!).abs().max().item<float>()} apart, largest {parameter.grad!.abs().max().item<float>()}");
    }

    /// <summary>With a window of 3 over 2 layers, token 0 reaches positions 0–4 only; a 10-token sequence decoded
    /// through the cache equals one pass.</summary>
    [Fact]
    public void ATokenOutsideTheWindowDoesNotMoveTheLogits()
    {
        manual_seed(22);
        var config = Config(window: 3);
        using var model = new ParallelForCausalLM(config);
        model.eval();
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var ids = randint(1, config.VocabSize, [1, 10], dtype: ScalarType.Int64);
        var changed = ids.clone();
        changed[0, 0] = (ids[0, 0] + 1) % config.VocabSize;
        var a = model.Logits(ids);
        var b = model.Logits(changed);
        var moved = (a - b).abs().amax(-1)[0];                      // (10)
        for (var t = 0; t < 10; t++)
            Assert.True(t <= 4 ? moved[t].item<float>() > 0 : moved[t].item<float>() == 0, $"position {t}: {moved[t].item<float>()}");

        using var cache = new KvCache();
        var first = model.Logits(ids.narrow(1, 0, 4), cache: cache);
        cache.Advance(4);
        Assert.True(first.allclose(a.narrow(1, 0, 4), rtol: 0, atol: 1e-5));
        for (var t = 4; t < 10; t++)
        {
            var step = model.Logits(ids.narrow(1, t, 1), cache: cache);
            cache.Advance(1);
            Assert.True(step.allclose(a.narrow(1, t, 1), rtol: 0, atol: 1e-5), $"step {t}");
        }
    }

    /// <summary>A rotary embedding for another head size than the attention's (both bound to config values, so only
    /// the run can compare them) is refused by name before any rotation (it used to compute other math, or crash in
    /// libtorch).</summary>
    [Fact]
    public void ARotarySizeThatIsNotTheHeadSizeIsRefused()
    {
        using var scope = NewDisposeScope();
        using var ctx = ForwardContext.Create(zeros(1, 3, 32), new StackInputs(), new PeftDsl.Modules.RotaryEmbedding(8, 10000, "default", "Stack"));
        var e = Assert.Throws<PeftDsl.Errors.ConfigException>(() => ctx.RotaryTables(16, "MyAttention"));
        Assert.StartsWith("MyAttention: the stack's rotary embedding is for heads of 8, but this attention's heads are 16", e.Message);
        Assert.Equal(8, ctx.RotaryTables(8, "MyAttention").Cos.shape[^1]);
    }

    /// <summary>A config whose v5 and legacy keys disagree is refused, naming both.</summary>
    [Fact]
    public void DisagreeingKeysAreRefused()
    {
        var json = PeftDsl.Config.ConfigJson.Parse("""{"vocab_size": 64, "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 4, "num_kv_heads": 2, "partial_rotary_factor": 0.5, "rotary_pct": 0.25}""", "config.json");
        var e = Assert.Throws<PeftDsl.Errors.ConfigException>(() => ParallelConfig.FromJson(json));
        Assert.Equal("config.json: \"partial_rotary_factor\": 0.5 and \"rotary_pct\": 0.25 disagree; refusing rather than guessing which one applies", e.Message);
        Assert.Equal(0.5, ParallelConfig.FromJson(PeftDsl.Config.ConfigJson.Parse("""{"vocab_size": 64, "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 4, "num_kv_heads": 2, "partial_rotary_factor": 0.5, "rotary_pct": 0.5}""", "config.json")).RotaryFraction);
        e = Assert.Throws<PeftDsl.Errors.ConfigException>(() => ParallelConfig.FromJson(PeftDsl.Config.ConfigJson.Parse("""{"vocab_size": 64, "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 4, "num_kv_heads": 2, "use_parallel_residual": false}""", "config.json")));
        Assert.Contains("\"use_parallel_residual\": false is not computed by ParallelConfig.ParallelResidual's declaration", e.Message);
    }

    /// <summary>T5's fused path: the mask folded into the shared position bias once per pass gives what masking the
    /// bias in every layer gave (causal with a cache offset, and a padding mask).</summary>
    [Fact]
    public void AMaskFoldedIntoThePositionBiasEqualsMaskingItInEachLayer()
    {
        using var scope = NewDisposeScope();
        var gen = new Generator(5);
        var q = randn([2, 4, 3, 8], generator: gen);
        var k = randn([2, 4, 5, 8], generator: gen);
        var v = randn([2, 4, 5, 8], generator: gen);
        var bias = randn([1, 4, 3, 5], generator: gen);
        var keyMask = tensor(new[] { true, true, true, true, true, true, true, false, false, true }).view(2, 1, 1, 5);
        foreach (var mask in new[] { new AttentionMask(null, true), new AttentionMask(keyMask, false), new AttentionMask(null, false) })
        {
            var each = PeftDsl.Modules.Attention.ScaledDotProduct(q, k, v, mask, scaled: false, bias: bias);
            var folded = PeftDsl.Modules.Attention.ScaledDotProduct(q, k, v, default, scaled: false,
                bias: PeftDsl.Modules.Attention.FoldMask(bias, mask, q.dtype));
            Assert.True(folded.allclose(each, rtol: 0, atol: 1e-6));
        }
    }

    /// <summary>The network written out: x + attn(ln(x)) + mlp(ln(x)) per block.</summary>
    private static Tensor Reference(Dictionary<string, Tensor> p, Tensor ids, ParallelConfig c)
    {
        long b = ids.shape[0], t = ids.shape[1], heads = c.Heads, kv = c.KvHeads, hd = c.HeadDim, group = heads / kv;
        var rd = (long)(hd * c.RotaryFraction);
        var inv = pow(10000.0, arange(0, rd, 2, dtype: ScalarType.Float32) / rd).reciprocal();
        var freqs = arange(t, dtype: ScalarType.Float32).unsqueeze(1) * inv;            // (T, rd/2)
        var emb = cat([freqs, freqs], 1);
        var (cos, sin) = (emb.cos(), emb.sin());
        Tensor Rotate(Tensor x)                                                          // (B, h, T, hd)
        {
            var r = x.narrow(-1, 0, rd);
            var rotated = r * cos + cat([-r.narrow(-1, rd / 2, rd / 2), r.narrow(-1, 0, rd / 2)], -1) * sin;
            return cat([rotated, x.narrow(-1, rd, hd - rd)], -1);
        }
        var i = arange(t).unsqueeze(1);
        var j = arange(t).unsqueeze(0);
        var allowed = j.le(i);
        if (c.SlidingWindow > 0) allowed = allowed & (i - j).lt(c.SlidingWindow);

        var h = p["transformer.word_embeddings.weight"].index_select(0, ids.flatten()).view(b, t, c.Hidden);
        for (var l = 0; l < c.Layers; l++)
        {
            var pre = $"transformer.h.{l}.";
            var n = F.layer_norm(h, [c.Hidden], p[pre + "input_layernorm.weight"], p[pre + "input_layernorm.bias"], 1e-5);
            var qkv = F.linear(n, p[pre + "self_attention.query_key_value.weight"]).view(b, t, kv, group + 2, hd);
            var q = Rotate(qkv.narrow(3, 0, group).reshape(b, t, heads, hd).transpose(1, 2));
            var k = Rotate(qkv.select(3, group).transpose(1, 2)).repeat_interleave(group, 1);
            var v = qkv.select(3, group + 1).transpose(1, 2).repeat_interleave(group, 1);
            var scores = q.matmul(k.transpose(-2, -1)) / Math.Sqrt(hd);
            var attention = F.softmax(scores.masked_fill(allowed.logical_not(), double.NegativeInfinity), -1).matmul(v);
            var merged = attention.transpose(1, 2).reshape(b, t, heads * hd);
            var attn = F.linear(merged, p[pre + "self_attention.dense.weight"]);
            var mlp = F.linear(F.gelu(F.linear(n, p[pre + "mlp.dense_h_to_4h.weight"])), p[pre + "mlp.dense_4h_to_h.weight"]);
            h = h + attn + mlp;
        }
        h = F.layer_norm(h, [c.Hidden], p["transformer.ln_f.weight"], p["transformer.ln_f.bias"], 1e-5);
        return F.linear(h, p["lm_head.weight"]);
    }
}
