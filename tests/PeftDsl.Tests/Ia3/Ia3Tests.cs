using PeftDsl.Errors;
using PeftDsl.Models.Gpt2;
using PeftDsl.Models.Llama;
using PeftDsl.Peft;
using PeftDsl.Peft.Ia3;
using PeftDsl.Peft.Lora;
using PeftDsl.Tests.Lora;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace PeftDsl.Tests.Ia3;

/// <summary>IA3 against the plain math: the fused weight scaling, mixed batches, merging, files and refusals.</summary>
[Collection(GlobalRandomness.Name)]
public sealed class Ia3Tests
{
    /// <summary>Random vectors (peft's init_ia3_weights=false), so every adapter changes the outputs.</summary>
    private static readonly Ia3Config Random = new() { InitIa3Weights = false };

    /// <summary>The fused path (scaled weight rows or columns) equals scaling the activations, in outputs and in the
    /// gradients of the vectors, for an output target (c_attn) and a feed-forward target (mlp.c_proj).</summary>
    [Fact]
    public void TheFusedScalingEqualsScalingTheActivations()
    {
        using var model = Gpt2LMHeadModel.FromPretrained(Fixtures.Base("gpt2"));
        manual_seed(1);
        model.Ia3.Add("a", Random);
        using var scope = NewDisposeScope();
        foreach (var (path, linear) in model.Adapters.Linears().Where(l => l.Linear.Ia3.Has("a")))
        {
            var v = linear.Ia3.Vector("a");
            var x = randn(2, 3, linear.InFeatures, generator: new Generator(2));
            var fused = linear.forward(x, model.Route(null, zeros(2, 1, dtype: ScalarType.Int64)));
            var plain = linear.Ia3.IsFeedforward("a")
                ? nn.functional.linear(x * v.flatten(), linear.weight, linear.bias)
                : nn.functional.linear(x, linear.weight, linear.bias) * v.flatten();
            Assert.True(fused.allclose(plain, rtol: 1e-5, atol: 1e-6), path);
            var weights = randn(fused.shape, generator: new Generator(3));
            var gFused = autograd.grad([(fused * weights).sum()], [v])[0];
            var gPlain = autograd.grad([(plain * weights).sum()], [v])[0];
            Assert.True(gFused.allclose(gPlain, rtol: 1e-4, atol: 1e-6), path);
        }
    }

    [Fact]
    public void ANewAdapterWithOnesIsTheBaseModelAndTheBaseStaysFrozen()
    {
        using var model = LlamaForCausalLM.FromPretrained(Fixtures.Base("llama"));
        using var scope = NewDisposeScope();
        var (ids, mask) = LoraMathTests.Batch();
        var before = model.Forward(ids, mask).Logits.detach();
        model.Ia3.Add("default", new Ia3Config());
        Assert.True(model.Forward(ids, mask).Logits.allclose(before, rtol: 0, atol: 1e-6));
        var trainable = model.TrainableParameters();
        Assert.All(trainable, p => Assert.Equal(PeftMethod.Ia3, p.Method));
        Assert.Equal(["down_proj", "k_proj", "v_proj"], trainable.Select(p => p.Name.Split('.')[^3]).Distinct().Order());
    }

    /// <summary>peft's per-family defaults (peft/utils/constants.py), by the checkpoint's model_type: mT5 scales k, v and
    /// wi_1 on their outputs (its feed-forward list is empty), T5 scales k and v on their outputs and wo on its input. The
    /// logits equal a hand computation: the base model with each target's weight rows (output) or columns (input)
    /// multiplied by the vector.</summary>
    [Theory]
    [InlineData("mt5", "k,v,wi_1", "")]
    [InlineData("t5", "k,v,wo", "wo")]
    public void T5FamilyDefaultsAreTheCheckpointsFamilysAndScaleWherePeftDoes(string family, string targets, string feedforward)
    {
        using var model = Models.T5.T5ForConditionalGeneration.FromPretrained(Fixtures.Base(family));
        using var reference = Models.T5.T5ForConditionalGeneration.FromPretrained(Fixtures.Base(family));
        manual_seed(4);
        model.Ia3.Add("default", Random);
        Assert.Equal(targets, string.Join(",", model.Ia3["default"].TargetModules!.Order()));
        Assert.Equal(feedforward, string.Join(",", model.Ia3["default"].FeedforwardModules!.Order()));
        var scaled = model.Adapters.Linears().Where(l => l.Linear.Ia3.Has("default")).ToList();
        Assert.Equal(targets, string.Join(",", scaled.Select(l => l.Path.Split('.')[^1]).Distinct().Order()));
        Assert.All(scaled, l => Assert.Equal(feedforward.Split(',').Contains(l.Path.Split('.')[^1]), l.Linear.Ia3.IsFeedforward("default")));

        using var scope = NewDisposeScope();
        var weights = reference.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        using (no_grad())
            foreach (var (path, linear) in scaled)
            {
                var v = linear.Ia3.Vector("default");
                weights[path + ".weight"].mul_(linear.Ia3.IsFeedforward("default") ? v.reshape(1, -1) : v.reshape(-1, 1));
            }
        var ids = tensor(new long[,] { { 5, 17, 300, 42, 7 }, { 9, 2, 3, 4, 1 } });
        var decoder = tensor(new long[,] { { 0, 4, 9 }, { 0, 8, 2 } });
        using var noGrad = no_grad();
        var expected = reference.Forward(ids, null, decoder).Logits;
        var actual = model.Forward(ids, null, decoder).Logits;
        Assert.True(actual.allclose(expected, rtol: 0, atol: 1e-4), $"max difference {(actual - expected).abs().max().item<float>()}");
        var plain = model.Forward(ids, null, decoder, adapterNames: [AdapterRouting.BaseRow, AdapterRouting.BaseRow]).Logits;
        Assert.False(actual.allclose(plain, rtol: 0, atol: 1e-3), "the vectors must change the logits");
    }

    /// <summary>A batch with two IA3 adapters and a base row equals each row run alone, in logits and gradients.</summary>
    [Fact]
    public void AMixedBatchEqualsEachRowAlone()
    {
        using var model = Gpt2LMHeadModel.FromPretrained(Fixtures.Base("gpt2"));
        manual_seed(4);
        model.Ia3.Add("a", Random);
        model.Ia3.Add("b", Random);
        model.Ia3.SetTrainable("b", true);
        using var scope = NewDisposeScope();
        var (ids, mask) = LoraMathTests.Batch();
        string[] rows = ["a", "b", AdapterRouting.BaseRow];
        var mixed = model.Forward(ids, mask, adapterNames: rows).Logits;
        for (var i = 0; i < 3; i++)
        {
            var alone = model.Forward(ids.narrow(0, i, 1), mask.narrow(0, i, 1), adapterNames: [rows[i]]).Logits;
            var where = mask.narrow(0, i, 1).unsqueeze(-1).to(ScalarType.Bool).expand_as(alone);
            Assert.True(alone.masked_select(where).allclose(mixed.narrow(0, i, 1).masked_select(where), rtol: 0, atol: 1e-5), $"row {i}");
        }
    }

    [Fact]
    public void MergingFoldsTheVectorsAndUnmergingRestoresTheWeightsExactly()
    {
        using var model = Gpt2LMHeadModel.FromPretrained(Fixtures.Base("gpt2"));
        manual_seed(6);
        model.Ia3.Add("a", Random);
        using var scope = NewDisposeScope();
        var (ids, mask) = LoraMathTests.Batch();
        model.eval();
        using var noGrad = no_grad();
        var weights = model.parameters().Select(p => p.detach().clone()).ToList();
        var unmerged = model.Forward(ids, mask).Logits.clone();
        model.Ia3.Merge();
        Assert.True(model.Forward(ids, mask).Logits.allclose(unmerged, rtol: 1e-4, atol: 1e-5));
        model.Ia3.Unmerge();
        Assert.All(model.parameters().Zip(weights), pair => Assert.True(pair.First.eq(pair.Second).all().item<bool>()));
        Assert.True(model.Forward(ids, mask).Logits.allclose(unmerged, rtol: 0, atol: 1e-6));
    }

    [Fact]
    public void SavedAdaptersLoadWithTheSameOutputsInPeftsFormat()
    {
        using var dir = new TempDir();
        using var model = Gpt2LMHeadModel.FromPretrained(Fixtures.Base("gpt2"));
        manual_seed(8);
        model.Ia3.Add("a", Random);
        model.Ia3.Save(dir.File("ia3"), "a");
        var json = File.ReadAllText(dir.File("ia3/adapter_config.json"));
        Assert.Contains("\"peft_type\": \"IA3\"", json);
        Assert.Contains("\"fan_in_fan_out\": true", json);
        using (var reader = Checkpoints.Safetensors.SafetensorsReader.Open(dir.File("ia3/adapter_model.safetensors")))
            Assert.Equal([96L, 1], reader.Entries["base_model.model.transformer.h.0.attn.c_attn.ia3_l"].Shape);

        using var loaded = Gpt2LMHeadModel.FromPretrained(Fixtures.Base("gpt2"));
        loaded.Ia3.Load(dir.File("ia3"), "a");
        using var scope = NewDisposeScope();
        var (ids, mask) = LoraMathTests.Batch();
        using var noGrad = no_grad();
        Assert.True(loaded.Forward(ids, mask).Logits.allclose(model.Forward(ids, mask).Logits, rtol: 0, atol: 1e-6));
    }

    /// <summary>peft merge of peft's own IA3 adapter gives a plain model whose logits are peft's adapted logits.</summary>
    [Fact]
    public void MergedIa3FolderComputesPeftsLogits()
    {
        using var dir = new TempDir();
        var (code, _, stderr) = ParityTests.Peft("merge", "--model", Fixtures.Base("llama"), "--adapter", Path.Combine(Fixtures.Directory, "llama.ia3"), "--out", dir.File("merged"));
        Assert.True(code == 0, stderr);
        using var merged = LlamaForCausalLM.FromPretrained(dir.File("merged"));
        Assert.DoesNotContain(merged.AllParameters(), p => p.Method != PeftMethod.Base);
        var expected = Fixtures.ReadAll(Fixtures.Expected("llama.ia3"));
        using var scope = NewDisposeScope();
        merged.eval();
        using var noGrad = no_grad();
        var logits = merged.Forward(expected["input_ids"], expected["attention_mask"]).Logits;
        var real = expected["attention_mask"].to(ScalarType.Bool).unsqueeze(-1).expand_as(logits);
        Assert.True(logits.masked_select(real).allclose(expected["logits"].masked_select(real), rtol: 0, atol: 1e-4));
    }

    /// <summary>peft's default feed-forward list applies when only the targets are given; a bf16 base scales in fp32.</summary>
    [Fact]
    public void DefaultFeedforwardModulesAndBf16()
    {
        using (var model = Gpt2LMHeadModel.FromPretrained(Fixtures.Base("gpt2")))
        {
            model.Ia3.Add("a", new Ia3Config { TargetModules = ["c_attn", "c_proj"] });
            Assert.True(model.transformer.h[0].mlp.c_proj.Ia3.IsFeedforward("a"));
            Assert.False(model.transformer.h[0].attn.c_proj.Ia3.IsFeedforward("a"));
        }
        using var bf16 = LlamaForCausalLM.FromPretrained(Fixtures.Base("llama"), new Runtime.ModelLoadOptions(ScalarType.BFloat16));
        manual_seed(9);
        bf16.Ia3.Add("a", Random);
        using var scope = NewDisposeScope();
        var (ids, mask) = LoraMathTests.Batch();
        var output = bf16.Forward(ids, mask, ids.masked_fill(mask == 0, -100));
        Assert.Equal(ScalarType.BFloat16, output.Logits.dtype);
        output.Loss!.backward();
        Assert.All(bf16.TrainableParameters(), p => Assert.Equal(ScalarType.Float32, p.Parameter.grad!.dtype));
    }

    /// <summary>Folded vectors act on every row, so a mixed batch is refused while merged; disabling unmerges.</summary>
    [Fact]
    public void MergedAdaptersRefuseMixedBatchesAndDisableUnmerges()
    {
        using var model = Gpt2LMHeadModel.FromPretrained(Fixtures.Base("gpt2"));
        manual_seed(10);
        model.Ia3.Add("a", Random);
        using var scope = NewDisposeScope();
        var (ids, mask) = LoraMathTests.Batch();
        var before = model.transformer.h[0].attn.c_attn.weight.detach().clone();
        model.Ia3.Merge();
        var e = Assert.Throws<PeftDslException>(() => model.Forward(ids, mask, adapterNames: ["a", AdapterRouting.BaseRow, "a"]));
        Assert.Contains("cannot be used while adapters are merged", e.Message);
        model.Adapters.Disable();
        Assert.True(model.transformer.h[0].attn.c_attn.weight.eq(before).all().item<bool>());
        e = Assert.Throws<PeftDslException>(() => model.Ia3.Merge());
        Assert.Contains("adapters are disabled", e.Message);
    }

    [Fact]
    public void MismatchesAndClashesAreRefused()
    {
        using var model = Gpt2LMHeadModel.FromPretrained(Fixtures.Base("gpt2"));
        model.Adapters.Add("lora", new LoraConfig { R = 2, TargetModules = ["c_attn"] });
        var e = Assert.Throws<PeftDslException>(() => model.Ia3.Add("ia3", new Ia3Config()));
        Assert.Contains("already carries a LoRA adapter", e.Message);
        e = Assert.Throws<PeftDslException>(() => model.Ia3.Add("lora", new Ia3Config { TargetModules = ["c_fc"] }));
        Assert.Contains("'lora' already names a LoRA adapter", e.Message);
        e = Assert.Throws<PeftDslException>(() => model.Ia3.Add("x", new Ia3Config { TargetModules = ["c_fc"], FeedforwardModules = ["mlp.c_proj"] }));
        Assert.Contains("feedforward_modules names 'mlp.c_proj', which is not in target_modules", e.Message);
        e = Assert.Throws<PeftDslException>(() => model.Ia3.Add("x", new Ia3Config { TargetModules = ["c_fc", "nope"] }));
        Assert.Contains("target 'nope' matches no linear module", e.Message);
        Assert.Empty(model.Ia3.Names);

        using var llama = LlamaForCausalLM.FromPretrained(Fixtures.Base("llama"));
        e = Assert.Throws<PeftDslException>(() => llama.Ia3.Load(Path.Combine(Fixtures.Directory, "gpt2.ia3")));
        Assert.Contains("match no linear module", e.Message);
        Assert.Empty(llama.Ia3.Names);
    }
}
