using PeftDsl.Errors;
using PeftDsl.Models.Gpt2;
using PeftDsl.Models.Llama;
using PeftDsl.Models.T5;
using PeftDsl.Peft.Lora;
using PeftDsl.Runtime;
using Xunit;

namespace PeftDsl.Tests.Lora;

/// <summary>Which projections a config selects: peft's rules, and NeMo's names on top.</summary>
public sealed class LoraTargetsTests
{
    private static string[] Selected(LanguageModel model, LoraConfig config) =>
        LoraTargets.Resolve(config, model.Adapters.Linears(), model.ModelType, "test").Select(t => t.Path).ToArray();

    [Fact]
    public void NamesMatchExactlyOrAsDottedSuffixes()
    {
        using var model = Gpt2LMHeadModel.FromPretrained(Fixtures.Base("gpt2"));
        Assert.Equal(["transformer.h.0.mlp.c_proj", "transformer.h.1.mlp.c_proj"], Selected(model, new LoraConfig { TargetModules = ["mlp.c_proj"] }));
        Assert.Equal(4, Selected(model, new LoraConfig { TargetModules = ["c_proj"] }).Length);   // attn.c_proj and mlp.c_proj
        Assert.Equal(["transformer.h.1.attn.c_attn"], Selected(model, new LoraConfig { TargetModules = ["transformer.h.1.attn.c_attn"] }));
    }

    [Fact]
    public void ARegexMustMatchTheWholePathAndIgnoresLayerSelection()
    {
        using var model = Gpt2LMHeadModel.FromPretrained(Fixtures.Base("gpt2"));
        Assert.Equal(["transformer.h.1.attn.c_attn", "transformer.h.1.mlp.c_fc"],
            Selected(model, new LoraConfig { TargetPattern = @".*\.1\.(attn\.c_attn|mlp\.c_fc)" }));
        Assert.Throws<PeftDslException>(() => Selected(model, new LoraConfig { TargetPattern = "c_attn" }));   // not a full match
    }

    [Fact]
    public void ExclusionsAndLayerSelectionFilterNamedTargets()
    {
        using var model = LlamaForCausalLM.FromPretrained(Fixtures.Base("llama"));
        var config = new LoraConfig { TargetModules = ["all-linear"], ExcludeModules = ["o_proj", "mlp.up_proj"], LayersToTransform = [1] };
        Assert.Equal(["model.layers.1.self_attn.q_proj", "model.layers.1.self_attn.k_proj", "model.layers.1.self_attn.v_proj",
            "model.layers.1.mlp.gate_proj", "model.layers.1.mlp.down_proj"], Selected(model, config));
        Assert.Equal(2, Selected(model, new LoraConfig { TargetModules = ["q_proj"], LayersPattern = ["layers"], LayersToTransform = [0, 1] }).Length);
        Assert.Throws<PeftDslException>(() => Selected(model, new LoraConfig { TargetModules = ["q_proj"], LayersPattern = ["h"], LayersToTransform = [0] }));
        Assert.Equal(["model.layers.0.self_attn.q_proj"],
            Selected(model, new LoraConfig { TargetModules = ["q_proj"], ExcludePattern = @".*layers\.1\..*" }));
    }

    [Fact]
    public void NemoSiteNamesAndShorthandsSelectByRole()
    {
        using var model = T5ForConditionalGeneration.FromPretrained(Fixtures.Base("t5"));
        var qkv = Selected(model, new LoraConfig { TargetModules = ["attention_qkv"] });
        Assert.Equal(3 * 2 * 2, qkv.Length);   // q, k, v × 2 layers × 2 stacks
        Assert.All(qkv, p => Assert.Contains("SelfAttention", p));
        Assert.Equal(["decoder.block.0.layer.1.EncDecAttention.k", "decoder.block.0.layer.1.EncDecAttention.v",
            "decoder.block.1.layer.1.EncDecAttention.k", "decoder.block.1.layer.1.EncDecAttention.v"],
            Selected(model, new LoraConfig { TargetModules = ["LORA_KV"] }));
        Assert.Equal(2 * 2 + 2 * 2, Selected(model, new LoraConfig { TargetModules = ["mlp"] }).Length);   // wi, wo × 2 layers × 2 stacks
        Assert.Equal(Selected(model, new LoraConfig { TargetModules = ["all-linear"] }), Selected(model, new LoraConfig { TargetModules = ["all"] }));
        Assert.Equal(Selected(model, new LoraConfig { TargetModules = ["attention", "mlp"] }).Order(), Selected(model, new LoraConfig { TargetModules = ["all"] }).Order());
    }

    /// <summary>peft counts T5's layer index as the first number in the path (the block), in both stacks.</summary>
    [Fact]
    public void LayerSelectionCountsBlocksInEveryStack()
    {
        using var model = T5ForConditionalGeneration.FromPretrained(Fixtures.Base("t5"));
        Assert.Equal(["encoder.block.1.layer.0.SelfAttention.q", "decoder.block.1.layer.0.SelfAttention.q", "decoder.block.1.layer.1.EncDecAttention.q"],
            Selected(model, new LoraConfig { TargetModules = ["q"], LayersToTransform = [1] }));
    }

    [Fact]
    public void RankAndAlphaPatternsUsePeftsKeyRule()
    {
        using var model = LlamaForCausalLM.FromPretrained(Fixtures.Base("llama"));
        var config = new LoraConfig
        {
            R = 4, Alpha = 8, TargetModules = ["q_proj", "v_proj"],
            RankPattern = new Dictionary<string, int> { ["layers.1.self_attn.q_proj"] = 2, ["v_proj"] = 6 },
            AlphaPattern = new Dictionary<string, double> { [@"layers\.0\..*q_proj"] = 1 },
        };
        var targets = LoraTargets.Resolve(config, model.Adapters.Linears(), model.ModelType, "test").ToDictionary(t => t.Path);
        Assert.Equal((4, 1.0), (targets["model.layers.0.self_attn.q_proj"].Rank, targets["model.layers.0.self_attn.q_proj"].Alpha));
        Assert.Equal((2, 8.0), (targets["model.layers.1.self_attn.q_proj"].Rank, targets["model.layers.1.self_attn.q_proj"].Alpha));
        Assert.Equal(6, targets["model.layers.0.self_attn.v_proj"].Rank);
        model.Adapters.Add("default", config);
        Assert.Equal(8.0 / 6, model.model.layers[1].self_attn.v_proj.Lora.Settings("default").Scaling, 12);
        Assert.Equal(1.0 / 4, model.model.layers[0].self_attn.q_proj.Lora.Settings("default").Scaling, 12);
    }

    [Fact]
    public void RsLoraScalesByTheSquareRootOfTheRank()
    {
        Assert.Equal(16 / Math.Sqrt(4), new LoraConfig { UseRsLora = true }.Scaling(4, 16), 12);
        Assert.Equal(16 / 4.0, new LoraConfig().Scaling(4, 16), 12);
    }

    [Fact]
    public void WithoutTargetsPeftsDefaultsForTheModelTypeApply()
    {
        using var llama = LlamaForCausalLM.FromPretrained(Fixtures.Base("llama"));
        Assert.Equal(4, Selected(llama, new LoraConfig()).Length);   // q_proj, v_proj × 2 layers
        using var gpt2 = Gpt2LMHeadModel.FromPretrained(Fixtures.Base("gpt2"));
        Assert.All(Selected(gpt2, new LoraConfig()), p => Assert.EndsWith("c_attn", p));
    }

    [Fact]
    public void NemoInitsAndPeftInitsStartAsTheySay()
    {
        using var model = Gpt2LMHeadModel.FromPretrained(Fixtures.Base("gpt2"));
        model.Adapters.Add("peft", new LoraConfig { TargetModules = ["c_fc"] });
        model.Adapters.Add("nemo", new LoraConfig { TargetModules = ["c_fc"], AInit = NemoInit.Zero, BInit = NemoInit.Normal });
        model.Adapters.Add("gauss", new LoraConfig { R = 4, TargetModules = ["c_fc"], InitLoraWeights = LoraInit.Gaussian });
        var lora = model.transformer.h[0].mlp.c_fc.Lora;
        Assert.Equal(0, lora.B("peft").abs().max().item<float>());                  // a new adapter changes nothing
        Assert.True(lora.A("peft").abs().max().item<float>() > 0);
        Assert.Equal(0, lora.A("nemo").abs().max().item<float>());
        Assert.InRange(lora.B("nemo").std().item<float>(), 0.1, 0.3);                // normal(0, 0.2)
        Assert.InRange(lora.A("gauss").std().item<float>(), 0.15, 0.35);             // normal(0, 1/r)
    }
}
