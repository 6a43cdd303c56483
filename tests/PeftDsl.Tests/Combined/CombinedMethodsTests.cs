using PeftDsl.Models.Gpt2;
using PeftDsl.Peft;
using PeftDsl.Peft.Ia3;
using PeftDsl.Peft.Lora;
using PeftDsl.Peft.Prompts;
using PeftDsl.Tests.Lora;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace PeftDsl.Tests.Combined;

/// <summary>Several methods on one model (NeMo's "ptuning,lora"): each acts as it would alone, the trainable set is
/// exactly their union, and each saves and loads on its own.</summary>
[Collection(GlobalRandomness.Name)]
public sealed class CombinedMethodsTests
{
    private static Gpt2LMHeadModel Combined()
    {
        var model = Gpt2LMHeadModel.FromPretrained(Fixtures.Base("gpt2"));
        manual_seed(21);
        model.Adapters.Add("lora", new LoraConfig { R = 4, Alpha = 8, TargetModules = ["c_fc"], InitLoraWeights = LoraInit.Off });
        model.Ia3.Add("ia3", new Ia3Config { TargetModules = ["c_attn", "mlp.c_proj"], FeedforwardModules = ["mlp.c_proj"], InitIa3Weights = false });
        model.Prompts.Add("prompt", new PromptConfig { Method = PromptMethod.PTuning, NumVirtualTokens = 4, EncoderHiddenSize = 16 });
        return model;
    }

    /// <summary>LoRA, IA3 and a P-tuning prompt together equal the prompt on a model whose weights had the LoRA
    /// delta and then the IA3 vectors folded in: the methods compose as their parts applied one after another.</summary>
    [Fact]
    public void TheCombinedModelEqualsItsPartsAppliedInTurn()
    {
        using var model = Combined();
        using var scope = NewDisposeScope();
        var (ids, mask) = LoraMathTests.Batch();
        model.eval();
        using var noGrad = no_grad();
        var together = model.Forward(ids, mask).Logits.clone();
        Assert.Equal(ids.shape[1] + 4, together.shape[1]);

        model.Adapters.Merge();   // W += BA on c_fc
        model.Ia3.Merge();        // then the vectors scale c_attn's rows and mlp.c_proj's columns
        var inTurn = model.Forward(ids, mask).Logits;
        var where = cat([ones(3, 4, dtype: ScalarType.Int64), mask], 1).unsqueeze(-1).to(ScalarType.Bool).expand_as(inTurn);
        Assert.True(together.masked_select(where).allclose(inTurn.masked_select(where), rtol: 1e-4, atol: 1e-5));

        model.Adapters.Unmerge();
        model.Ia3.Unmerge();
        model.Prompts.SetActive(null);
        Assert.False(model.Forward(ids, mask).Logits.shape[1] == together.shape[1]);   // the prompt was a part
    }

    [Fact]
    public void TheTrainableSetIsExactlyTheUnionAndEveryPartGetsAGradient()
    {
        using var model = Combined();
        using var scope = NewDisposeScope();
        var trainable = model.TrainableParameters();
        Assert.Equal([PeftMethod.Lora, PeftMethod.Ia3, PeftMethod.PromptLearning], trainable.Select(p => p.Method).Distinct().Order());
        Assert.DoesNotContain(trainable, p => p.Method == PeftMethod.Base);
        var expected = model.AllParameters().Where(p => p.Method != PeftMethod.Base).Sum(p => p.Parameter.NumberOfElements);
        Assert.Equal(expected, trainable.Sum(p => p.Parameter.NumberOfElements));
        Assert.Equal(["ia3", "lora", "prompt"], trainable.Select(p => p.Adapter!).Distinct().Order());

        var (ids, mask) = LoraMathTests.Batch();
        model.train();
        model.Forward(ids, mask, ids.masked_fill(mask == 0, -100)).Loss!.backward();
        Assert.All(trainable, p => Assert.True(p.Parameter.grad is not null && p.Parameter.grad.abs().sum().item<float>() > 0, p.Name));
    }

    [Fact]
    public void EachMethodSavesAndLoadsOnItsOwn()
    {
        using var dir = new TempDir();
        using var model = Combined();
        model.Adapters.Save(dir.File("lora"));
        model.Ia3.Save(dir.File("ia3"), "ia3");
        model.Prompts.Save(dir.File("prompt"), "prompt");
        Assert.Contains("\"LORA\"", File.ReadAllText(dir.File("lora/lora/adapter_config.json")));
        Assert.Contains("\"IA3\"", File.ReadAllText(dir.File("ia3/adapter_config.json")));
        Assert.Contains("\"P_TUNING\"", File.ReadAllText(dir.File("prompt/adapter_config.json")));

        using var loaded = Gpt2LMHeadModel.FromPretrained(Fixtures.Base("gpt2"));
        loaded.Adapters.Load(dir.File("lora/lora"), "lora");
        loaded.Ia3.Load(dir.File("ia3"), "ia3");
        loaded.Prompts.Load(dir.File("prompt"), "prompt");
        using var scope = NewDisposeScope();
        var (ids, mask) = LoraMathTests.Batch();
        model.eval();
        loaded.eval();
        using var noGrad = no_grad();
        Assert.True(loaded.Forward(ids, mask).Logits.allclose(model.Forward(ids, mask).Logits, rtol: 0, atol: 1e-5));
    }
}
