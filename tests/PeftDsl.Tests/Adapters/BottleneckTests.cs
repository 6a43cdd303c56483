using PeftDsl.Errors;
using PeftDsl.Models.Gpt2;
using PeftDsl.Models.T5;
using PeftDsl.Peft;
using PeftDsl.Peft.Adapters;
using PeftDsl.Tests.Lora;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace PeftDsl.Tests.Adapters;

/// <summary>Bottleneck adapters against a hand computation, the identity at start, a frozen base, files, mixed batches.</summary>
[Collection(GlobalRandomness.Name)]
public sealed class BottleneckTests
{
    /// <summary>Gives every up projection random weights, so the adapter changes the outputs.</summary>
    private static void Randomize(Runtime.LanguageModel model, string name)
    {
        using var noGrad = no_grad();
        foreach (var (_, site) in model.Bottleneck.Sites().Where(s => s.Site.Has(name)))
            site.Adapter(name).linear_out.weight.normal_(0, 0.5);
    }

    [Fact]
    public void TheAdapterIsTheHandComputedBottleneck()
    {
        using var model = Gpt2LMHeadModel.FromPretrained(Fixtures.Base("gpt2"));
        manual_seed(31);
        model.Bottleneck.Add("a", new BottleneckConfig { AdapterDim = 8, Norm = BottleneckNorm.Pre, Activation = BottleneckActivation.Swish });
        Randomize(model, "a");
        var layer = model.transformer.h[0].MlpAdapter.Adapter("a");
        using var scope = NewDisposeScope();
        using (no_grad())
        {
            layer.layer_norm!.weight!.normal_();
            layer.layer_norm.bias!.normal_();
        }
        var h = randn(2, 5, 32, generator: new Generator(2));
        // h + W_out · swish(W_in · LN(h)), written out from the definitions.
        var mean = h.mean([-1], keepdim: true);
        var variance = (h - mean).pow(2).mean([-1], keepdim: true);
        var normalized = (h - mean) / (variance + 1e-5).sqrt() * layer.layer_norm.weight! + layer.layer_norm.bias!;
        var z = normalized.matmul(layer.linear_in.weight.t());
        var expected = (z * sigmoid(z)).matmul(layer.linear_out.weight.t());
        Assert.True(layer.Delta(h, h).allclose(expected, rtol: 1e-4, atol: 1e-5));
    }

    /// <summary>NeMo's placement reads the sublayer's output without its output projection's bias (a = h − b) and adds
    /// a + adapter(a) + b; the default reads h. Each site finds its projection: c_proj of the attention, c_proj of the
    /// MLP. On a model without output biases (T5) both placements compute the same.</summary>
    [Fact]
    public void NemosPlacementReadsTheOutputBeforeItsBias()
    {
        using var model = Gpt2LMHeadModel.FromPretrained(Fixtures.Base("gpt2"));
        manual_seed(33);
        using (no_grad())   // the fixture's biases are zero (transformers' init): give them values
            foreach (var b in model.transformer.h)
            {
                b.attn.c_proj.bias!.normal_(0, 0.5);
                b.mlp.c_proj.bias!.normal_(0, 0.5);
            }
        model.Bottleneck.Add("seq", new BottleneckConfig { AdapterDim = 8 });
        model.Bottleneck.Add("nemo", new BottleneckConfig { AdapterDim = 8, Placement = BottleneckPlacement.Nemo });
        Randomize(model, "seq");
        CopyWeights(model, "seq", "nemo");
        var block = model.transformer.h[0];
        Assert.Same(block.attn.c_proj, block.AttentionAdapter.OutputProjection);
        Assert.Same(block.mlp.c_proj, block.MlpAdapter.OutputProjection);

        using var scope = NewDisposeScope();
        var bias = block.attn.c_proj.bias!;
        var h = randn(2, 5, 32, generator: new Generator(4));
        var x = randn(2, 5, 32, generator: new Generator(5));
        var sequential = block.AttentionAdapter.Adapter("seq");
        var nemo = block.AttentionAdapter.Adapter("nemo");
        Assert.True(nemo.Delta(h, x, bias).allclose(sequential.Delta(h - bias, x), rtol: 0, atol: 1e-6));
        Assert.False(nemo.Delta(h, x, bias).allclose(sequential.Delta(h, x), rtol: 0, atol: 1e-3));

        var (ids, mask) = LoraMathTests.Batch();
        using var noGrad = no_grad();
        var bySequential = model.Forward(ids, mask, adapterNames: ["seq", "seq", "seq"]).Logits;
        var byNemo = model.Forward(ids, mask, adapterNames: ["nemo", "nemo", "nemo"]).Logits;
        Assert.False(bySequential.allclose(byNemo, rtol: 0, atol: 1e-4), "GPT-2's output biases must make the placements differ");

        using var dir = new TempDir();
        model.Bottleneck.Save(dir.File("nemo"), "nemo");
        Assert.Contains("\"placement\": \"nemo\"", File.ReadAllText(dir.File("nemo/adapter_config.json")));
        using (var loaded = Gpt2LMHeadModel.FromPretrained(Fixtures.Base("gpt2")))
        {
            loaded.Bottleneck.Load(dir.File("nemo"), "nemo");
            Assert.Equal(BottleneckPlacement.Nemo, loaded.Bottleneck["nemo"].Placement);
            Assert.Same(loaded.transformer.h[1].mlp.c_proj, loaded.transformer.h[1].MlpAdapter.OutputProjection);
        }

        using var t5 = T5ForConditionalGeneration.FromPretrained(Fixtures.Base("t5"));
        t5.Bottleneck.Add("seq", new BottleneckConfig { AdapterDim = 4 });
        t5.Bottleneck.Add("nemo", new BottleneckConfig { AdapterDim = 4, Placement = BottleneckPlacement.Nemo });
        Randomize(t5, "seq");
        CopyWeights(t5, "seq", "nemo");
        var decoder = ids.narrow(1, 0, 3);
        Assert.True(t5.Forward(ids, mask, decoder, adapterNames: ["seq", "seq", "seq"]).Logits
            .allclose(t5.Forward(ids, mask, decoder, adapterNames: ["nemo", "nemo", "nemo"]).Logits, rtol: 0, atol: 1e-6));
    }

    private static void CopyWeights(Runtime.LanguageModel model, string from, string to)
    {
        using var noGrad = no_grad();
        foreach (var (_, site) in model.Bottleneck.Sites().Where(s => s.Site.Has(from)))
        {
            var source = site.Adapter(from).named_parameters().ToDictionary(p => p.name, p => p.parameter);
            foreach (var (name, p) in site.Adapter(to).named_parameters()) p.copy_(source[name]);
        }
    }

    [Fact]
    public void ANewAdapterIsTheIdentityAndTheBaseStaysFrozen()
    {
        using var model = T5ForConditionalGeneration.FromPretrained(Fixtures.Base("t5"));
        using var scope = NewDisposeScope();
        var (ids, mask) = LoraMathTests.Batch();
        var decoder = ids.narrow(1, 0, 3);
        // Both under no_grad: with gradients on, SDPA may pick another kernel once the base is frozen.
        Tensor before, after;
        using (no_grad()) before = model.Forward(ids, mask, decoder).Logits;
        manual_seed(32);
        model.Bottleneck.Add("a", new BottleneckConfig { AdapterDim = 4 });
        using (no_grad()) after = model.Forward(ids, mask, decoder).Logits;
        Assert.True(after.eq(before).all().item<bool>(), $"max diff {(after - before).abs().max().item<float>()}, nan {after.isnan().any().item<bool>()}");   // bit-identical
        var trainable = model.TrainableParameters();
        Assert.All(trainable, p => Assert.Equal(PeftMethod.Adapter, p.Method));
        // Encoder: attention and MLP sites; decoder: also cross-attention, in each of the 2 + 2 blocks.
        Assert.Equal(2 * 2 + 2 * 3, model.Bottleneck.Sites().Count(s => s.Site.Has("a")));
    }

    [Fact]
    public void SavedAdaptersLoadWithTheSameOutputsAndMixedBatchesEqualTheirRows()
    {
        using var dir = new TempDir();
        using var model = Gpt2LMHeadModel.FromPretrained(Fixtures.Base("gpt2"));
        manual_seed(33);
        model.Bottleneck.Add("a", new BottleneckConfig { AdapterDim = 4, Sites = ["mlp_adapter"], Norm = BottleneckNorm.Post, Activation = BottleneckActivation.Gelu });
        model.Bottleneck.Add("b", new BottleneckConfig { AdapterDim = 6, Norm = BottleneckNorm.None, Layers = [1] });
        Randomize(model, "a");
        Randomize(model, "b");
        model.Bottleneck.Save(dir.File("a"), "a");
        Assert.Contains("\"peft_type\": \"PEFTDSL_BOTTLENECK\"", File.ReadAllText(dir.File("a/adapter_config.json")));

        using var scope = NewDisposeScope();
        var (ids, mask) = LoraMathTests.Batch();
        model.eval();
        using var noGrad = no_grad();
        using (var loaded = Gpt2LMHeadModel.FromPretrained(Fixtures.Base("gpt2")))
        {
            loaded.Bottleneck.Load(dir.File("a"), "a");
            loaded.eval();
            Assert.True(loaded.Forward(ids, mask).Logits.allclose(model.Forward(ids, mask, adapterNames: ["a", "a", "a"]).Logits, rtol: 0, atol: 1e-6));
        }
        string[] rows = ["a", "b", AdapterRouting.BaseRow];
        var mixed = model.Forward(ids, mask, adapterNames: rows).Logits;
        for (var i = 0; i < 3; i++)
        {
            var alone = model.Forward(ids.narrow(0, i, 1), mask.narrow(0, i, 1), adapterNames: [rows[i]]).Logits;
            var where = mask.narrow(0, i, 1).unsqueeze(-1).to(ScalarType.Bool).expand_as(alone);
            Assert.True(alone.masked_select(where).allclose(mixed.narrow(0, i, 1).masked_select(where), rtol: 0, atol: 1e-5), $"row {i}");
        }
    }

    /// <summary>On a bf16 base the fp32 adapter runs in fp32 and the sum is rounded once to bf16.</summary>
    [Fact]
    public void AnFp32AdapterRunsOnABf16Base()
    {
        using var model = Gpt2LMHeadModel.FromPretrained(Fixtures.Base("gpt2"), new Runtime.ModelLoadOptions(ScalarType.BFloat16));
        manual_seed(34);
        model.Bottleneck.Add("a", new BottleneckConfig { AdapterDim = 4 });
        Randomize(model, "a");
        Assert.Equal(ScalarType.Float32, model.transformer.h[0].MlpAdapter.Adapter("a").linear_in.weight.dtype);
        using var scope = NewDisposeScope();
        var (ids, mask) = LoraMathTests.Batch();
        var logits = model.Forward(ids, mask, ids.masked_fill(mask == 0, -100));
        Assert.Equal(ScalarType.BFloat16, logits.Logits.dtype);
        logits.Loss!.backward();
        Assert.NotNull(model.transformer.h[0].MlpAdapter.Adapter("a").linear_out.weight.grad);
    }

    /// <summary>A parallel adapter runs beside the sublayer: the block is x1 = x + attn(ln_1 x), then
    /// x1 + mlp(ln_2 x1) + W_out relu(W_in ln_2 x1), composed here from the block's parts.</summary>
    [Fact]
    public void AParallelAdapterReadsTheSublayersInput()
    {
        using var model = Gpt2LMHeadModel.FromPretrained(Fixtures.Base("gpt2"));
        manual_seed(35);
        model.Bottleneck.Add("p", new BottleneckConfig { AdapterDim = 4, Sites = ["mlp_adapter"], Norm = BottleneckNorm.None,
            Activation = BottleneckActivation.Relu, Placement = BottleneckPlacement.Parallel });
        Randomize(model, "p");
        using var scope = NewDisposeScope();
        var block = model.transformer.h[0];
        var x = randn(2, 5, 32, generator: new Generator(4));
        using var ctx = Runtime.ForwardContext.Create(x, new Runtime.StackInputs(Routing: model.Route(null, zeros(2, 5, dtype: ScalarType.Int64))), null);
        var layer = block.MlpAdapter.Adapter("p");
        var x1 = x + block.attn.forward(block.ln_1.forward(x), ctx);
        var h2 = block.ln_2.forward(x1);
        var expected = x1 + block.mlp.forward(h2, ctx) + nn.functional.relu(h2.matmul(layer.linear_in.weight.t())).matmul(layer.linear_out.weight.t());
        Assert.True(block.forward(x, ctx).allclose(expected, rtol: 1e-5, atol: 1e-5));
    }

    /// <summary>NeMo's weight tying: one adapter per site name in each stack (T5: 2 in the encoder, 3 in the decoder),
    /// shared by every block, counted and saved once, trained by every block's gradient; it loads back the same.</summary>
    [Fact]
    public void TiedAdaptersAreOneLayerPerSiteSharedByEveryBlock()
    {
        using var dir = new TempDir();
        using var model = T5ForConditionalGeneration.FromPretrained(Fixtures.Base("t5"));
        manual_seed(36);
        model.Bottleneck.Add("t", new BottleneckConfig { AdapterDim = 4, TieWeights = true });
        Randomize(model, "t");
        var sites = model.Bottleneck.Sites().Where(s => s.Site.Has("t")).ToList();
        Assert.Equal(10, sites.Count);
        Assert.Equal(5, sites.Count(s => s.Site.Owns("t")));
        Assert.Same(sites.First(s => s.Path == "encoder.block.0.mlp_adapter").Site.Adapter("t"), sites.First(s => s.Path == "encoder.block.1.mlp_adapter").Site.Adapter("t"));
        var perLayer = model.encoder.block[0].MlpAdapter.Adapter("t").parameters().Sum(p => p.numel());
        Assert.Equal(5 * perLayer, model.TrainableParameters().Sum(p => p.Parameter.numel()));

        using var scope = NewDisposeScope();
        var (ids, mask) = LoraMathTests.Batch();
        var decoder = ids.narrow(1, 0, 3);
        var logits = model.Forward(ids, mask, decoder).Logits;
        // The shared weight's gradient is the sum over the blocks that use it: nonzero through block 1 alone too.
        logits.sum().backward();
        Assert.NotNull(model.encoder.block[1].MlpAdapter.Adapter("t").linear_in.weight.grad);

        model.Bottleneck.Save(dir.File("t"), "t");
        var keys = Fixtures.ReadAll(dir.File("t/adapter_model.safetensors")).Keys.ToList();
        Assert.DoesNotContain(keys, k => k.Contains("block.1.", StringComparison.Ordinal));
        Assert.Contains("\"weight_tying\": true", File.ReadAllText(dir.File("t/adapter_config.json")));
        using var loaded = T5ForConditionalGeneration.FromPretrained(Fixtures.Base("t5"));
        loaded.Bottleneck.Load(dir.File("t"), "t");
        using var noGrad = no_grad();
        Assert.True(loaded.Forward(ids, mask, decoder).Logits.allclose(logits.detach(), rtol: 0, atol: 1e-6));
    }

    [Fact]
    public void BadConfigsAreRefusedByName()
    {
        using var model = Gpt2LMHeadModel.FromPretrained(Fixtures.Base("gpt2"));
        var e = Assert.Throws<PeftDslException>(() => model.Bottleneck.Add("a", new BottleneckConfig { Sites = ["cross_attention_adapter"] }));
        Assert.Contains("'cross_attention_adapter' is not an adapter site of the model; its sites are attention_adapter, mlp_adapter", e.Message);
        e = Assert.Throws<PeftDslException>(() => model.Bottleneck.Add("a", new BottleneckConfig { AdapterDim = 0 }));
        Assert.Contains("adapter_dim must be a positive whole number", e.Message);
        e = Assert.Throws<PeftDslException>(() => model.Bottleneck.Add("a", new BottleneckConfig { Layers = [7] }));
        Assert.Contains("layer 7 does not exist (the model's blocks are 0 … 1)", e.Message);
        e = Assert.Throws<PeftDslException>(() => model.Bottleneck.Add("a", new BottleneckConfig { Init = BottleneckInit.Zero }));
        Assert.Contains("never trains", e.Message);
        model.Ia3.Add("taken", new Peft.Ia3.Ia3Config());
        e = Assert.Throws<PeftDslException>(() => model.Bottleneck.Add("taken", new BottleneckConfig()));
        Assert.Contains("'taken' already names an IA3 adapter", e.Message);
        e = Assert.Throws<PeftDslException>(() => model.Bottleneck.Add("lora_A", new BottleneckConfig()));
        Assert.Contains("is a container name in the state dict", e.Message);
        Assert.Empty(model.Bottleneck.Names);
    }
}
