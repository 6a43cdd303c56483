using PeftDsl.Errors;
using PeftDsl.Models.Gpt2;
using PeftDsl.Models.Llama;
using PeftDsl.Runtime;
using Xunit;
using static TorchSharp.torch;

namespace PeftDsl.Tests;

/// <summary>Forward-pass behaviour beyond the fixtures: batching, padding, bad inputs, bf16.</summary>
public sealed class ForwardTests
{
    public static TheoryData<string> Families => ["gpt2", "llama"];

    [Theory]
    [MemberData(nameof(Families))]
    public void PaddedBatchRowsMatchTheirUnpaddedRuns(string family)
    {
        using var model = Load(family);
        var a = tensor(new long[] { 11, 22, 33, 44, 55, 66 });
        var b = tensor(new long[] { 7, 8, 9 });
        var batch = stack([a, cat([b, zeros(3, ScalarType.Int64)])]);
        var mask = stack([ones(6, ScalarType.Int64), tensor(new long[] { 1, 1, 1, 0, 0, 0 })]);

        using var _ = no_grad();
        var batched = model.Forward(batch, mask).Logits;
        var aloneA = model.Forward(a.unsqueeze(0)).Logits[0];
        var aloneB = model.Forward(b.unsqueeze(0)).Logits[0];

        Assert.True(batched[0].allclose(aloneA, rtol: 0, atol: 1e-5));
        Assert.True(batched[1, TensorIndex.Slice(0, 3)].allclose(aloneB, rtol: 0, atol: 1e-5));
    }

    [Theory]
    [MemberData(nameof(Families))]
    public void BackwardReachesEveryParameter(string family)
    {
        using var model = Load(family);
        model.train();
        var ids = tensor(new long[,] { { 3, 4, 5, 6 } });
        using var output = model.Forward(ids, labels: ids);
        output.Loss!.backward();
        Assert.All(model.parameters(), p => Assert.NotNull(p.grad));
        Assert.True(output.Loss.item<float>() > 0);
    }

    [Fact]
    public void Bf16ForwardAndBackwardRun()
    {
        using var model = LlamaForCausalLM.FromPretrained(Fixtures.Base("llama"), new ModelLoadOptions(ScalarType.BFloat16));
        var ids = tensor(new long[,] { { 3, 4, 5, 6 } });
        using var output = model.Forward(ids, labels: ids);
        output.Loss!.backward();
        Assert.Equal(ScalarType.BFloat16, output.Logits.dtype);
        Assert.Equal(ScalarType.Float32, output.Loss.dtype);
        Assert.True(float.IsFinite(output.Loss.item<float>()));
    }

    [Fact]
    public void BadInputsGetClearErrors()
    {
        using var model = Load("gpt2");
        var ids = tensor(new long[,] { { 1, 2, 3 } });
        Assert.Contains("attention_mask has shape [1, 2], expected [1, 3]",
            Assert.Throws<PeftDslException>(() => model.Forward(ids, ones(1, 2, ScalarType.Int64))).Message);
        Assert.Contains("input_ids must be (batch, length)",
            Assert.Throws<PeftDslException>(() => model.Forward(tensor(new long[] { 1, 2 }))).Message);
        Assert.Contains("labels have shape [1, 2]",
            Assert.Throws<PeftDslException>(() => model.Forward(ids, labels: ones(1, 2, ScalarType.Int64))).Message);
        Assert.Contains("exceeds the model's 64 learned positions",
            Assert.Throws<PeftDslException>(() => model.Forward(ones(1, 65, ScalarType.Int64))).Message);
    }

    [Fact]
    public void FreshModelIsInitialisedAndDeterministicUnderASeed()
    {
        var config = Gpt2Config.Load(Path.Combine(Fixtures.Base("gpt2"), "config.json"));
        manual_seed(7);
        using var first = new Gpt2LMHeadModel(config);
        manual_seed(7);
        using var second = new Gpt2LMHeadModel(config);
        var w = first.transformer.h[0].attn.c_attn.weight;
        Assert.True(w.allclose(second.transformer.h[0].attn.c_attn.weight));
        Assert.InRange(w.std().item<float>(), 0.015f, 0.025f);
        Assert.True(first.transformer.ln_f.weight.eq(1).all().item<bool>());
    }

    private static CausalLanguageModel Load(string family)
    {
        CausalLanguageModel model = family == "gpt2"
            ? Gpt2LMHeadModel.FromPretrained(Fixtures.Base("gpt2"))
            : LlamaForCausalLM.FromPretrained(Fixtures.Base("llama"));
        model.eval();
        return model;
    }
}
