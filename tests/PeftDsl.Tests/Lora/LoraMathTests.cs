using PeftDsl.Models.Gpt2;
using PeftDsl.Models.Llama;
using PeftDsl.Models.T5;
using PeftDsl.Modules;
using PeftDsl.Peft;
using PeftDsl.Peft.Lora;
using PeftDsl.Runtime;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace PeftDsl.Tests.Lora;

/// <summary>LoRA's math against the plain formulas: mixed batches, the shared-input path, merge, dropout, training.</summary>
[Collection(GlobalRandomness.Name)]
public sealed class LoraMathTests
{
    /// <summary>Random A and B (peft's init_lora_weights=false), so every adapter changes the outputs.</summary>
    internal static LoraConfig Random(params string[] targets) => new() { R = 4, Alpha = 8, TargetModules = targets, InitLoraWeights = LoraInit.Off };

    /// <summary>Adapters a (r 4 on c_attn, c_fc) and b (r 2 on c_attn, mlp.c_proj), both trainable: their sites overlap
    /// only partly, so a mixed batch meets sites where one of them is absent.</summary>
    internal static void AddTwo(Gpt2LMHeadModel model)
    {
        manual_seed(1);
        model.Adapters.Add("a", Random("c_attn", "c_fc"));
        model.Adapters.Add("b", Random("c_attn", "mlp.c_proj") with { R = 2, Alpha = 6 });
        model.Adapters.SetTrainable("b", true);
    }

    internal static (Tensor Ids, Tensor Mask) Batch(int rows = 3, int length = 6, long vocab = 512, bool padLast = true)
    {
        var generator = new Generator(7);
        var ids = randint(2, vocab, [rows, length], generator: generator);
        var mask = ones(rows, length, dtype: ScalarType.Int64);
        if (padLast) mask[rows - 1, TensorIndex.Slice(length - 2)] = 0;
        return (ids, mask);
    }

    [Fact]
    public void MixedBatchEqualsEachRowAloneInLogitsAndGradients()
    {
        using var model = Gpt2LMHeadModel.FromPretrained(Fixtures.Base("gpt2"));
        AddTwo(model);
        using var scope = NewDisposeScope();
        var (ids, mask) = Batch();
        string[] rows = ["a", "b", AdapterRouting.BaseRow];
        var weights = randn(3, ids.shape[1], model.VocabSize, generator: new Generator(3));

        model.train();   // training mode: peft refuses mixed batches here; we must still be exact
        var mixed = model.Forward(ids, mask, adapterNames: rows).Logits;
        (mixed * weights).sum().backward();
        var mixedGrads = LoraGrads(model);

        var alone = new List<Tensor>();
        for (var i = 0; i < rows.Length; i++)
        {
            if (rows[i] == AdapterRouting.BaseRow) model.Adapters.Disable();
            else model.Adapters.SetActive(rows[i]);
            var logits = model.Forward(ids.narrow(0, i, 1), mask.narrow(0, i, 1)).Logits;
            alone.Add(logits);
            // Gradients accumulate over the rows; the base row has no adapter to reach.
            if (logits.requires_grad) (logits * weights.narrow(0, i, 1)).sum().backward();
            model.Adapters.Enable();
        }
        AssertClose(cat(alone, 0), mixed, 1e-5);
        var rowGrads = LoraGrads(model);
        Assert.NotEmpty(mixedGrads);
        foreach (var (name, grad) in mixedGrads)
            AssertClose(rowGrads[name] - grad, grad, 1e-5, name, relative: true);   // accumulated = mixed + per-row, so per-row = accumulated − mixed
    }

    [Fact]
    public void MixedBatchRejectsDoraUnknownNamesAndMergedAdapters()
    {
        using var model = Gpt2LMHeadModel.FromPretrained(Fixtures.Base("gpt2"));
        model.Adapters.Add("a", Random("c_attn"));
        model.Adapters.Add("d", Random("c_attn") with { UseDora = true });
        var (ids, mask) = Batch(rows: 2);
        Assert.Contains("uses DoRA", Assert.Throws<Errors.PeftDslException>(() => model.Forward(ids, mask, adapterNames: ["a", "d"])).Message);
        Assert.Contains("adapter 'x' does not exist (adapters: a, d)",
            Assert.Throws<Errors.PeftDslException>(() => model.Forward(ids, mask, adapterNames: ["a", "x"])).Message);
        Assert.Contains("has 1 entries for a batch of 2 rows",
            Assert.Throws<Errors.PeftDslException>(() => model.Forward(ids, mask, adapterNames: ["a"])).Message);
        model.Adapters.Merge();
        Assert.Contains("Unmerge()", Assert.Throws<Errors.PeftDslException>(() => model.Forward(ids, mask, adapterNames: ["a", "a"])).Message);
    }

    /// <summary>q/k/v (and gate/up) through one stacked A and one block-diagonal B equal each projection alone, in
    /// outputs and in gradients; and the fused path is the one taken.</summary>
    [Fact]
    public void SharedInputPathEqualsEachProjectionAlone()
    {
        using var model = LlamaForCausalLM.FromPretrained(Fixtures.Base("llama"));
        manual_seed(2);
        model.Adapters.Add("default", Random("q_proj", "k_proj", "v_proj", "gate_proj", "up_proj") with
        {
            RankPattern = new Dictionary<string, int> { ["k_proj"] = 2 },
            AlphaPattern = new Dictionary<string, double> { ["v_proj"] = 3 },
        });
        var attention = model.model.layers[0].self_attn;
        PeftLinear[] projections = [attention.q_proj, attention.k_proj, attention.v_proj];
        using var scope = NewDisposeScope();
        var x = randn(2, 5, 32, generator: new Generator(5));
        var routing = AdapterRouting.Uniform(["default"]);

        var fused = SharedInputLora.TryProject(x, routing, projections);
        Assert.NotNull(fused);
        var plain = projections.Select(p => p.forward(x, routing)).ToArray();
        for (var i = 0; i < 3; i++) AssertClose(fused![i], plain[i], 1e-6);

        var probe = projections.Select(p => randn_like(p.forward(x, routing))).ToArray();
        cat(fused!.Select((t, i) => (t * probe[i]).sum().unsqueeze(0)).ToList()).sum().backward();
        var fusedGrads = LoraGrads(model);
        model.zero_grad();
        cat(plain.Select((t, i) => (t * probe[i]).sum().unsqueeze(0)).ToList()).sum().backward();
        foreach (var (name, grad) in LoraGrads(model)) AssertClose(fusedGrads[name], grad, 1e-6, name, relative: true);
    }

    [Fact]
    public void SharedInputPathStepsAsideWhenItCannotBeExact()
    {
        using var model = LlamaForCausalLM.FromPretrained(Fixtures.Base("llama"));
        model.Adapters.Add("a", Random("q_proj", "k_proj") with { Dropout = 0.5 });
        model.Adapters.Add("d", Random("q_proj", "k_proj") with { UseDora = true });
        var attention = model.model.layers[0].self_attn;
        PeftLinear[] projections = [attention.q_proj, attention.k_proj, attention.v_proj];
        using var scope = NewDisposeScope();
        var x = randn(1, 3, 32);
        model.train();
        Assert.Null(SharedInputLora.TryProject(x, AdapterRouting.Uniform(["a"]), projections));   // dropout draws a mask
        model.eval();
        Assert.NotNull(SharedInputLora.TryProject(x, AdapterRouting.Uniform(["a"]), projections)); // eval: no mask
        Assert.Null(SharedInputLora.TryProject(x, AdapterRouting.Uniform(["d"]), projections));    // DoRA
        Assert.Null(SharedInputLora.TryProject(x, AdapterRouting.Uniform(["a", "d"]), projections));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void MergeGivesTheSameLogitsAndUnmergeRestoresTheWeights(bool dora)
    {
        using var model = Gpt2LMHeadModel.FromPretrained(Fixtures.Base("gpt2"));
        manual_seed(3);
        model.Adapters.Add("default", Random("c_attn", "c_proj", "c_fc") with { UseDora = dora });
        using var scope = NewDisposeScope();
        var before = model.AllParameters().Where(p => p.Method == PeftMethod.Base).ToDictionary(p => p.Name, p => p.Parameter.detach().clone());
        var (ids, mask) = Batch();
        model.eval();
        var unmerged = model.Forward(ids, mask).Logits;

        model.Adapters.Merge();
        AssertClose(model.Forward(ids, mask).Logits, unmerged, 1e-5);
        Assert.Contains("default", model.transformer.h[0].attn.c_attn.Lora.Merged);
        model.Adapters.Unmerge();

        foreach (var p in model.AllParameters().Where(p => p.Method == PeftMethod.Base))
            AssertClose(p.Parameter, before[p.Name], 1e-6, p.Name);
        AssertClose(model.Forward(ids, mask).Logits, unmerged, 1e-5);
    }

    [Fact]
    public void MergeAndUnloadLeavesAPlainModelComputingTheAdaptedFunction()
    {
        using var model = T5ForConditionalGeneration.FromPretrained(Fixtures.Base("mt5"));
        manual_seed(4);
        model.Adapters.Add("default", Random("q", "v", "wi_0", "wo"));
        using var scope = NewDisposeScope();
        var (ids, mask) = Batch(rows: 2);
        var decoder = ids.narrow(1, 0, 3);
        model.eval();
        var adapted = model.Forward(ids, mask, decoder).Logits;

        model.Adapters.MergeAndUnload();
        Assert.Empty(model.Adapters.Names);
        Assert.Empty(model.SelectParameters(new ParameterQuery(PeftMethod.Lora)));
        Assert.DoesNotContain("lora", string.Join(",", model.named_parameters().Select(p => p.name)));
        AssertClose(model.Forward(ids, mask, decoder).Logits, adapted, 1e-4);
    }

    /// <summary>Several optimizer steps change only LoRA tensors: the filter returns exactly them, the base is
    /// bit-identical afterwards.</summary>
    [Fact]
    public void TrainingChangesOnlyTheAdapter()
    {
        using var model = LlamaForCausalLM.FromPretrained(Fixtures.Base("llama"));
        model.Adapters.Add("default", new LoraConfig { R = 4, TargetModules = ["all"], Dropout = 0.1 });
        var trainable = model.TrainableParameters();
        Assert.Equal(model.SelectParameters(new ParameterQuery(PeftMethod.Lora)).Select(p => p.Name), trainable.Select(p => p.Name));
        Assert.Equal(2 * 7 * 2, trainable.Count);   // A and B × 7 projections × 2 layers
        using var scope = NewDisposeScope();
        var baseBefore = model.AllParameters().Where(p => p.Method == PeftMethod.Base).ToDictionary(p => p.Name, p => p.Parameter.detach().clone());
        var loraBefore = trainable.ToDictionary(p => p.Name, p => p.Parameter.detach().clone());
        using var optimizer = optim.AdamW(trainable.Select(p => p.Parameter), lr: 1e-2, weight_decay: 0.1);
        var (ids, mask) = Batch();
        model.train();
        for (var step = 0; step < 3; step++)
        {
            optimizer.zero_grad();
            model.Forward(ids, mask, ids.masked_fill(mask == 0, Losses.IgnoreIndex)).Loss!.backward();
            optimizer.step();
        }
        foreach (var p in model.AllParameters().Where(p => p.Method == PeftMethod.Base))
            Assert.True(p.Parameter.equal(baseBefore[p.Name]).all().item<bool>(), p.Name + " changed");
        Assert.All(trainable.Where(p => p.Name.Contains("lora_B")), p => Assert.False(p.Parameter.equal(loraBefore[p.Name]).all().item<bool>(), p.Name));
    }

    /// <summary>Dropout acts on the adapter's input (peft, NeMo 'pre') or its output (NeMo 'post'), only in training.</summary>
    [Theory]
    [InlineData(DropoutPosition.Pre)]
    [InlineData(DropoutPosition.Post)]
    public void DropoutFollowsItsPosition(DropoutPosition position)
    {
        using var model = Gpt2LMHeadModel.FromPretrained(Fixtures.Base("gpt2"));
        model.Adapters.Add("default", Random("c_fc") with { Dropout = 0.5, DropoutPosition = position });
        var linear = model.transformer.h[0].mlp.c_fc;
        using var scope = NewDisposeScope();
        var x = randn(2, 3, 32);
        var routing = AdapterRouting.Uniform(["default"]);
        var (a, b, s) = (linear.Lora.A("default"), linear.Lora.B("default"), linear.Lora.Settings("default").Scaling);
        var baseOut = nn.functional.linear(x, linear.weight, linear.bias);

        linear.train();
        manual_seed(11);
        var ours = linear.forward(x, routing);
        manual_seed(11);
        var expected = position == DropoutPosition.Pre
            ? baseOut + s * nn.functional.linear(nn.functional.linear(nn.functional.dropout(x, 0.5, true), a), b)
            : baseOut + s * nn.functional.dropout(nn.functional.linear(nn.functional.linear(x, a), b), 0.5, true);
        AssertClose(ours, expected, 1e-6);

        linear.eval();
        AssertClose(linear.forward(x, routing), baseOut + s * nn.functional.linear(nn.functional.linear(x, a), b), 1e-6);
    }

    [Fact]
    public void WeightedCatIsTheExactSumAndLinearScalesOneAdapter()
    {
        using var model = Gpt2LMHeadModel.FromPretrained(Fixtures.Base("gpt2"));
        manual_seed(5);
        model.Adapters.Add("a", Random("c_attn", "c_fc"));
        model.Adapters.Add("b", Random("c_attn") with { R = 2, Alpha = 3 });
        model.Adapters.AddWeighted(["a", "b"], [0.7, -1.5], "mix", "cat");
        model.Adapters.AddWeighted(["a"], [0.5], "half", "linear");
        using var scope = NewDisposeScope();
        foreach (var (path, linear) in model.Adapters.Linears().Where(l => l.Linear.Lora.Has("a")))
        {
            var lora = linear.Lora;
            var expected = lora.DeltaWeight("a") * 0.7 + (lora.Has("b") ? lora.DeltaWeight("b") * -1.5 : zeros_like(lora.DeltaWeight("a")));
            AssertClose(lora.DeltaWeight("mix"), expected, 1e-6, path);
            AssertClose(lora.DeltaWeight("half"), lora.DeltaWeight("a") * 0.5, 1e-6, path);
            Assert.Equal(6, lora.Settings("mix").Rank);
        }
        Assert.Contains("needs equal ranks", Assert.Throws<Errors.PeftDslException>(() => model.Adapters.AddWeighted(["a", "b"], [1, 1], "bad", "linear")).Message);
        Assert.Contains("'svd' is not supported", Assert.Throws<Errors.PeftDslException>(() => model.Adapters.AddWeighted(["a", "b"], [1, 1], "bad", "svd")).Message);
    }

    [Fact]
    public void AdaptersCanBeActivatedDisabledAndDeleted()
    {
        using var model = Gpt2LMHeadModel.FromPretrained(Fixtures.Base("gpt2"));
        manual_seed(6);
        using var scope = NewDisposeScope();
        var (ids, mask) = Batch(rows: 1, padLast: false);
        model.eval();
        var plain = model.Forward(ids, mask).Logits;
        model.Adapters.Add("a", Random("c_attn"));
        model.Adapters.Add("b", Random("c_fc"));
        Assert.Equal(["a"], model.Adapters.Active);   // the first adapter is active, as in peft
        var withA = model.Forward(ids, mask).Logits;
        Assert.False(withA.allclose(plain));

        model.Adapters.SetActive("a", "b");            // both act: their deltas add
        var both = model.Forward(ids, mask).Logits;
        model.Adapters.SetActive("b");
        var withB = model.Forward(ids, mask).Logits;
        Assert.False(both.allclose(withA) || both.allclose(withB));

        model.Adapters.Disable();
        AssertClose(model.Forward(ids, mask).Logits, plain, 0);
        model.Adapters.Enable();
        AssertClose(model.Forward(ids, mask).Logits, withB, 0);

        model.Adapters.Delete("b");                    // the active one: as in peft, the first remaining takes over
        Assert.Equal(["a"], model.Adapters.Names);
        Assert.Equal(["a"], model.Adapters.Active);
        Assert.DoesNotContain(model.named_parameters(), p => p.name.Contains(".b."));
        AssertClose(model.Forward(ids, mask).Logits, withA, 0);
        Assert.Contains("already exists", Assert.Throws<Errors.PeftDslException>(() => model.Adapters.Add("a", Random("c_attn"))).Message);
        model.Adapters.Delete("a");
        Assert.Empty(model.Adapters.Active);
        AssertClose(model.Forward(ids, mask).Logits, plain, 0);
        Assert.Contains("not a usable adapter name", Assert.Throws<Errors.PeftDslException>(() => model.Adapters.Add("x.y", Random("c_attn"))).Message);
        Assert.Contains("does not exist", Assert.Throws<Errors.PeftDslException>(() => model.Adapters.SetActive("zzz")).Message);
    }

    /// <summary>Decoding with an unmerged adapter through the KV cache equals recomputing every step.</summary>
    [Fact]
    public void CachedGenerationWithAnAdapterEqualsRecomputation()
    {
        using var model = Gpt2LMHeadModel.FromPretrained(Fixtures.Base("gpt2"));
        manual_seed(8);
        model.Adapters.Add("default", Random("c_attn", "c_fc"));
        var options = new Generation.GenerationOptions { MaxNewTokens = 6 };
        long[][] prompts = [[5, 6, 7, 8], [9, 10]];
        var cached = Generation.TextGenerator.Generate(model, prompts, options);
        var recomputed = Generation.TextGenerator.Generate(model, prompts, options with { UseCache = false });
        Assert.Equal(recomputed, cached);
        model.Adapters.Disable();
        Assert.NotEqual(cached, Generation.TextGenerator.Generate(model, prompts, options));
    }

    /// <summary>On a bf16 base the adapter stays fp32 (peft's autocast_adapter_dtype): its delta is computed in fp32
    /// and cast back, and its gradients are fp32.</summary>
    [Fact]
    public void AdaptersStayFp32OnABf16Base()
    {
        using var model = LlamaForCausalLM.FromPretrained(Fixtures.Base("llama"), new ModelLoadOptions(ScalarType.BFloat16));
        manual_seed(9);
        model.Adapters.Add("default", Random("q_proj", "k_proj", "down_proj"));
        Assert.All(model.TrainableParameters(), p => Assert.Equal(ScalarType.Float32, p.Parameter.dtype));
        using var scope = NewDisposeScope();
        var (ids, mask) = Batch();
        var output = model.Forward(ids, mask, ids.masked_fill(mask == 0, Losses.IgnoreIndex));
        Assert.Equal(ScalarType.BFloat16, output.Logits.dtype);
        output.Loss!.backward();
        Assert.All(model.TrainableParameters(), p => Assert.Equal(ScalarType.Float32, p.Parameter.grad!.dtype));

        using var reference = LlamaForCausalLM.FromPretrained(Fixtures.Base("llama"));
        manual_seed(9);
        reference.Adapters.Add("default", Random("q_proj", "k_proj", "down_proj"));
        reference.eval();
        model.eval();
        AssertClose(model.Forward(ids, mask).Logits.to(ScalarType.Float32), reference.Forward(ids, mask).Logits, 0.1);
    }

    private static Dictionary<string, Tensor> LoraGrads(nn.Module model) =>
        model.SelectParameters(new ParameterQuery(PeftMethod.Lora))
            .Where(p => p.Parameter.grad is not null)
            .ToDictionary(p => p.Name, p => p.Parameter.grad!.clone());

    /// <param name="relative">Scale the tolerance by the largest magnitude of <paramref name="expected"/> (fp32 sums
    /// of many terms round in proportion to their size).</param>
    internal static void AssertClose(Tensor actual, Tensor expected, double atol, string? what = null, bool relative = false)
    {
        Assert.Equal(expected.shape, actual.shape);
        var diff = (actual - expected).abs().max().item<float>();
        var allowed = relative ? atol * Math.Max(1, expected.abs().max().item<float>()) : atol;
        Assert.True(diff <= allowed, $"{what ?? "tensors"} differ by {diff} (allowed {allowed})");
    }
}
