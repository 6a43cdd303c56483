using System.Text.Json.Nodes;
using PeftDsl.Errors;
using PeftDsl.Models.Gpt2;
using PeftDsl.Models.Llama;
using PeftDsl.Models.T5;
using PeftDsl.Peft;
using PeftDsl.Peft.Ia3;
using PeftDsl.Testing;
using PeftDsl.Tests.Lora;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace PeftDsl.Tests.Ia3;

/// <summary>NeMo's IA3 placement (keys and values after the QKV split, the MLP activation) against the plain math,
/// and its file, which peft reads as a whole-projection IA3 adapter.</summary>
[Collection(GlobalRandomness.Name)]
public sealed class Ia3NemoPlacementTests
{
    private static readonly Ia3Config Nemo = new() { Placement = Ia3Placement.Nemo, InitIa3Weights = false };

    /// <summary>On GPT-2's fused c_attn only the key and value columns are scaled (2 × hidden rows, no query part);
    /// the MLP's activation is scaled, attn.c_proj is left alone.</summary>
    [Fact]
    public void OnAFusedQkvOnlyTheKeyAndValueColumnsAreScaled()
    {
        using var model = Gpt2LMHeadModel.FromPretrained(Fixtures.Base("gpt2"));
        manual_seed(5);
        model.Ia3.Add("n", Nemo);
        using var scope = NewDisposeScope();
        var block = model.transformer.h[0];
        var cAttn = block.attn.c_attn;
        const long hidden = 32;
        Assert.Equal([2 * hidden, 1], cAttn.Ia3.Vector("n").shape);
        Assert.Equal([1, 4 * hidden], block.mlp.c_proj.Ia3.Vector("n").shape);
        Assert.False(block.attn.c_proj.Ia3.Has("n"));
        Assert.Equal(2 * (2 * hidden + 4 * hidden), model.TrainableParameters().Sum(p => p.Parameter.numel()));

        var x = randn(2, 3, hidden, generator: new Generator(2));
        var v = cAttn.Ia3.Vector("n").flatten();
        var fused = cAttn.forward(x, model.Route(null, zeros(2, 1, dtype: ScalarType.Int64)));
        // q unchanged, [k | v] times the vector: the split written out.
        var y = nn.functional.linear(x, cAttn.weight, cAttn.bias);
        var plain = cat([y[.., .., ..(int)hidden], y[.., .., (int)hidden..] * v], -1);
        Assert.True(fused.allclose(plain, rtol: 1e-5, atol: 1e-6));
        var weights = randn(fused.shape, generator: new Generator(3));
        var gFused = autograd.grad([(fused * weights).sum()], [cAttn.Ia3.Vector("n")])[0];
        var gPlain = autograd.grad([(plain * weights).sum()], [cAttn.Ia3.Vector("n")])[0];
        Assert.True(gFused.allclose(gPlain, rtol: 1e-4, atol: 1e-6));
    }

    /// <summary>On Llama (grouped-query: 2 kv heads for 4 query heads) NeMo's sites are k_proj, v_proj (kv width) and
    /// the down projection's input, which are peft's defaults: the same vectors give the same logits.</summary>
    [Fact]
    public void OnLlamaWithGroupedQueriesItEqualsPeftsDefaultTargets()
    {
        using var model = LlamaForCausalLM.FromPretrained(Fixtures.Base("llama"));
        manual_seed(6);
        model.Ia3.Add("nemo", Nemo);
        model.Ia3.Add("peft", new Ia3Config());
        using var scope = NewDisposeScope();
        var attention = model.model.layers[0].self_attn;
        Assert.Equal([16L, 1], attention.k_proj.Ia3.Vector("nemo").shape);   // 2 kv heads × head_dim 8
        Assert.False(attention.q_proj.Ia3.Has("nemo"));
        using (no_grad())
            foreach (var (_, linear) in model.Adapters.Linears().Where(l => l.Linear.Ia3.Has("nemo")))
                linear.Ia3.Vector("peft").copy_(linear.Ia3.Vector("nemo"));
        var (ids, mask) = LoraMathTests.Batch();
        model.Ia3.SetActive("nemo");
        var nemo = model.Forward(ids, mask).Logits.detach();
        model.Ia3.SetActive("peft");
        Assert.True(nemo.allclose(model.Forward(ids, mask).Logits, rtol: 0, atol: 1e-6));
    }

    /// <summary>T5 scales k and v of self- and cross-attention and the MLP before wo; mT5 (gated) the product of its
    /// two branches, wo's input, where peft's default (wi_1) would scale the hidden state instead.</summary>
    [Theory]
    [InlineData("t5")]
    [InlineData("mt5")]
    public void OnT5TheCrossAttentionKeysAndValuesAndTheMlpBeforeWoAreScaled(string family)
    {
        using var model = T5ForConditionalGeneration.FromPretrained(Fixtures.Base(family));
        model.Ia3.Add("n", Nemo);
        var scaled = model.Adapters.Linears().Where(l => l.Linear.Ia3.Has("n")).ToList();
        Assert.Equal(["k", "v", "wo"], scaled.Select(l => l.Path.Split('.')[^1]).Distinct().Order());
        Assert.Contains(scaled, l => l.Path.Contains("EncDecAttention.k", StringComparison.Ordinal));
        Assert.All(scaled.Where(l => l.Path.EndsWith(".wo", StringComparison.Ordinal)), l => Assert.True(l.Linear.Ia3.IsFeedforward("n")));
        Assert.All(scaled.Where(l => !l.Path.EndsWith(".wo", StringComparison.Ordinal)), l => Assert.False(l.Linear.Ia3.IsFeedforward("n")));
    }

    /// <summary>The file holds peft's whole-projection vectors (ones on the query columns): it loads back as the
    /// same adapter, and peft, which drops our placement key, computes the same logits from it.</summary>
    [Fact]
    public void TheSavedFileLoadsBackAndReadsAsAPeftAdapter()
    {
        using var dir = new TempDir();
        using var model = Gpt2LMHeadModel.FromPretrained(Fixtures.Base("gpt2"));
        manual_seed(7);
        model.Ia3.Add("n", Nemo);
        var folder = Path.Combine(dir.Path, "nemo");
        model.Ia3.Save(folder, "n");
        using var scope = NewDisposeScope();
        var (ids, mask) = LoraMathTests.Batch();
        var expected = model.Forward(ids, mask).Logits.detach();

        var saved = Fixtures.ReadAll(Path.Combine(folder, Ia3Registry.WeightsFile));
        var cAttn = saved["base_model.model.transformer.h.0.attn.c_attn.ia3_l"];
        Assert.Equal([96L, 1], cAttn.shape);
        Assert.True(cAttn[..32].eq(1).all().item<bool>());
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(folder, Ia3Registry.ConfigFile)))!.AsObject();
        Assert.Equal("nemo", (string?)config[Ia3ConfigJson.PlacementKey]);

        using var reloaded = Gpt2LMHeadModel.FromPretrained(Fixtures.Base("gpt2"));
        reloaded.Ia3.Load(folder, "n");
        Assert.Equal([64L, 1], reloaded.transformer.h[0].attn.c_attn.Ia3.Vector("n").shape);
        Assert.True(reloaded.Forward(ids, mask).Logits.allclose(expected, rtol: 0, atol: 1e-6));

        // As peft reads it: without our key, a whole-projection adapter on the listed modules.
        config.Remove(Ia3ConfigJson.PlacementKey);
        var peftFolder = Path.Combine(dir.Path, "as-peft");
        Directory.CreateDirectory(peftFolder);
        File.WriteAllText(Path.Combine(peftFolder, Ia3Registry.ConfigFile), config.ToJsonString());
        File.Copy(Path.Combine(folder, Ia3Registry.WeightsFile), Path.Combine(peftFolder, Ia3Registry.WeightsFile));
        using var asPeft = Gpt2LMHeadModel.FromPretrained(Fixtures.Base("gpt2"));
        asPeft.Ia3.Load(peftFolder, "p");
        Assert.True(asPeft.Forward(ids, mask).Logits.allclose(expected, rtol: 0, atol: 1e-6));
    }

    /// <summary>A NeMo-placed file whose query columns are not 1 scales what NeMo's placement never trains: refused,
    /// naming the tensor; so is a file whose modules are not the model's IA3 sites.</summary>
    [Fact]
    public void AFileThatIsNotNemosPlacementIsRefused()
    {
        using var dir = new TempDir();
        using var model = Gpt2LMHeadModel.FromPretrained(Fixtures.Base("gpt2"));
        model.Ia3.Add("n", Nemo);
        var folder = Path.Combine(dir.Path, "nemo");
        model.Ia3.Save(folder, "n");
        var weights = Path.Combine(folder, Ia3Registry.WeightsFile);
        var tensors = Fixtures.ReadAll(weights);
        tensors["base_model.model.transformer.h.1.attn.c_attn.ia3_l"][3, 0] = tensor(2f);
        PeftDsl.Checkpoints.Safetensors.SafetensorsWriter.Save(weights, tensors);
        using var other = Gpt2LMHeadModel.FromPretrained(Fixtures.Base("gpt2"));
        var e = Assert.Throws<PeftDslException>(() => other.Ia3.Load(folder, "n"));
        Assert.Contains("transformer.h.1.attn.c_attn.ia3_l scales columns outside the keys and values", e.Message);
        Assert.False(other.Ia3.Contains("n"));

        tensors["base_model.model.transformer.h.1.attn.c_attn.ia3_l"][3, 0] = tensor(1f);
        PeftDsl.Checkpoints.Safetensors.SafetensorsWriter.Save(weights, tensors);
        var configPath = Path.Combine(folder, Ia3Registry.ConfigFile);
        var config = JsonNode.Parse(File.ReadAllText(configPath))!.AsObject();
        config["target_modules"] = new JsonArray("c_attn", "c_proj");   // attn.c_proj too: not a NeMo site
        File.WriteAllText(configPath, config.ToJsonString());
        e = Assert.Throws<PeftDslException>(() => other.Ia3.Load(folder, "n"));
        Assert.True(e.Message.Contains("do not name this model's IA3 sites", StringComparison.Ordinal), e.Message);
    }

    /// <summary>GPT-NeoX interleaves q, k and v per head in one projection: NeMo's placement (contiguous key and value
    /// columns) would scale the wrong columns, so it is refused by name; peft's placement works.</summary>
    [Fact]
    public void NemosPlacementIsRefusedOnAnInterleavedQkv()
    {
        using var model = PeftDsl.Models.GptNeoX.GptNeoXForCausalLM.FromPretrained(Repo.File("tests", "fixtures", "hf-arch", "gpt_neox-base"));
        var e = Assert.Throws<PeftDslException>(() => model.Ia3.Add("n", Nemo));
        Assert.Contains("gpt_neox.layers.0.attention.query_key_value interleaves q, k and v per head", e.Message);
        Assert.False(model.Ia3.Contains("n"));
        model.Ia3.Add("p", new Ia3Config { InitIa3Weights = false });
        Assert.True(model.Ia3.Contains("p"));
    }
}
