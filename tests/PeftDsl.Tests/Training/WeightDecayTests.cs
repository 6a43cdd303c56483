using PeftDsl.Models.Gpt2;
using PeftDsl.Peft.Adapters;
using PeftDsl.Peft.Ia3;
using PeftDsl.Peft.Lora;
using PeftDsl.Peft.Prompts;
using PeftDsl.Training;
using Xunit;
using static TorchSharp.torch;

namespace PeftDsl.Tests.Training;

/// <summary>Weight decay is off unless asked for, and when asked for it spares biases, norms, IA3 vectors and DoRA
/// magnitudes (Hugging Face's Trainer spares the first two; the scales are ours).</summary>
[Collection(GlobalRandomness.Name)]
public sealed class WeightDecayTests
{
    [Fact]
    public void TheDefaultIsNoDecay()
    {
        Assert.Equal(0, new TrainerOptions().WeightDecay);
        Assert.Equal("0", new TrainerOptions().Settings()["--weight-decay"]);
    }

    /// <summary>Every method at once on GPT-2: which trainable tensors the rule decays, by name; and one AdamW step
    /// with zero gradients (so that only the decay moves anything) shrinks exactly those by 1 − lr·λ.</summary>
    [Fact]
    public void DecaySparesBiasesNormsAndScales()
    {
        using var model = Gpt2LMHeadModel.FromPretrained(Fixtures.Base("gpt2"));
        manual_seed(8);
        model.Adapters.Add("lora", new LoraConfig { R = 2, TargetModules = ["c_attn"], UseDora = true });
        model.Ia3.Add("ia3", new Ia3Config { TargetModules = ["mlp.c_proj"], FeedforwardModules = ["mlp.c_proj"] });
        model.Bottleneck.Add("adapter", new BottleneckConfig { AdapterDim = 4, Norm = BottleneckNorm.Pre });
        model.Prompts.Add("task", new PromptConfig { Method = PromptMethod.PTuning, NumVirtualTokens = 2, EncoderHiddenSize = 8 });
        using var flat = FlatParameters.Of(model);
        var norms = WeightDecayRule.NormParameters(model);
        var decayed = flat.Members.Where(m => WeightDecayRule.Decays(m, norms)).Select(m => Kind(m.Name)).Distinct().Order().ToList();
        var spared = flat.Members.Where(m => !WeightDecayRule.Decays(m, norms)).Select(m => Kind(m.Name)).Distinct().Order().ToList();
        Assert.Equal(["embedding.weight", "linear_in.weight", "linear_out.weight", "lora_A", "lora_B", "mlp_head.weight"], decayed);
        Assert.Equal(["ia3_l", "layer_norm.bias", "layer_norm.weight", "lora_magnitude_vector", "mlp_head.bias"], spared);

        using var mask = flat.Mask(m => WeightDecayRule.Decays(m, norms));
        using var before = flat.Values.clone();
        using var optimizer = new FlatAdamW(flat, weightDecay: 0.1, decayMask: mask.clone());
        flat.ZeroGrad();
        optimizer.Step(lr: 0.5);
        using var expected = before * (1 - 0.5 * 0.1 * mask);
        Assert.True(flat.Values.allclose(expected, rtol: 1e-6, atol: 1e-7));
        Assert.True(mask.sum().item<float>() > 0 && mask.sum().item<float>() < flat.Count);
    }

    /// <summary>A parameter's kind: the container or the module-and-tensor suffix, without adapter names and indices.</summary>
    private static string Kind(string name)
    {
        foreach (var container in new[] { "lora_A", "lora_B", "lora_magnitude_vector", "ia3_l" })
            if (name.Contains(container + ".", StringComparison.Ordinal) || name.EndsWith(container, StringComparison.Ordinal)) return container;
        var parts = name.Split('.').Where(p => !p.All(char.IsAsciiDigit)).ToArray();
        return string.Join('.', parts.TakeLast(2));
    }
}
