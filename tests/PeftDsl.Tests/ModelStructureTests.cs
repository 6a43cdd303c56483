using PeftDsl.Checkpoints;
using PeftDsl.Checkpoints.Safetensors;
using PeftDsl.Errors;
using PeftDsl.Models.Gpt2;
using PeftDsl.Models.Llama;
using PeftDsl.Models.T5;
using PeftDsl.Peft;
using PeftDsl.Testing;
using Xunit;

namespace PeftDsl.Tests;

/// <summary>State-dict names and shapes, PEFT sites and the parameter filter of the generated models.</summary>
public sealed class ModelStructureTests
{
    /// <summary>The generated static listing, the built model and the checkpoint file agree key for key.</summary>
    [Theory]
    [InlineData("gpt2")]
    [InlineData("llama")]
    [InlineData("t5")]
    [InlineData("mt5")]
    public void ListingsAgreeAndMatchTheSnapshot(string family)
    {
        var configPath = Path.Combine(Fixtures.Base(family), "config.json");
        var (generated, built) = family switch
        {
            "gpt2" => Listings(Gpt2Config.Load(configPath), Gpt2LMHeadModel.CheckpointKeys, c => new Gpt2LMHeadModel(c)),
            "llama" => Listings(LlamaConfig.Load(configPath), LlamaForCausalLM.CheckpointKeys, c => new LlamaForCausalLM(c)),
            "t5" => Listings(T5Config.Load(configPath), T5ForConditionalGeneration.CheckpointKeys, c => new T5ForConditionalGeneration(c)),
            _ => Listings(T5Config.Load(configPath), T5ForConditionalGeneration.CheckpointKeys, c => new T5ForConditionalGeneration(c)),
        };

        Assert.Equal(generated, built);
        Assert.Equal(generated, FileListing(Fixtures.Base(family)));
        Snapshot.Verify(generated, family + ".keys", "txt");
    }

    private static (string Generated, string Built) Listings<TConfig, TModel>(
        TConfig config, Func<TConfig, IReadOnlyList<CheckpointKey>> keys, Func<TConfig, TModel> build)
        where TModel : TorchSharp.torch.nn.Module
    {
        using var model = build(config);
        return (CheckpointLayout.Describe(keys(config)), CheckpointLayout.Describe(model));
    }

    [Fact]
    public void T5SitesNameTheCrossAttentionGroupsAsNemoDoes()
    {
        using var model = T5ForConditionalGeneration.FromPretrained(Fixtures.Base("t5"));
        var sites = model.Sites();

        Snapshot.Verify(string.Join("\n", sites) + "\n", "t5.sites", "txt");
        Assert.Single(sites, s => s.Kind == SiteKind.VirtualPrompt && s.ModulePath == "encoder.embed_tokens");
        var cross = model.SelectParameters(new ParameterQuery(Sites: [SiteNames.AttentionKv], Layers: [1]));
        Assert.Equal(["decoder.block.1.layer.1.EncDecAttention.k.weight", "decoder.block.1.layer.1.EncDecAttention.v.weight"], Names(cross));
        var query = model.SelectParameters(new ParameterQuery(Sites: [T5ForConditionalGeneration.Targets.EncDecAttention_q]));
        Assert.Equal(2, query.Count);
        Assert.All(query, p => Assert.Equal(SiteNames.AttentionQ, p.Site!.Name));
        // NeMo's group names select the same sites.
        Assert.Equal(Names(query), Names(model.SelectParameters(new ParameterQuery(Sites: ["LORA_Q"]))));
        Assert.Equal(Names(cross), Names(model.SelectParameters(new ParameterQuery(Sites: ["LORA_KV"], Layers: [1]))));
        Assert.Equal(12, model.SelectParameters(new ParameterQuery(Sites: ["LORA_KQV"])).Count); // self-attention q, k, v × 2 layers × 2 stacks, no biases
    }

    [Fact]
    public void GatedAndPlainT5FeedForwardsLoadFromOneDeclaration()
    {
        using var plain = T5ForConditionalGeneration.FromPretrained(Fixtures.Base("t5"));
        using var gated = T5ForConditionalGeneration.FromPretrained(Fixtures.Base("mt5"));
        Assert.NotNull(plain.encoder.block[0].layer_1_DenseReluDense.wi);
        Assert.Null(plain.encoder.block[0].layer_1_DenseReluDense.wi_0);
        Assert.NotNull(gated.decoder.block[1].layer_2_DenseReluDense.wi_0);
        Assert.Null(gated.decoder.block[1].layer_2_DenseReluDense.wi);
    }

    [Fact]
    public void SitesCoverAllFourMethodKinds()
    {
        using var model = Gpt2LMHeadModel.FromPretrained(Fixtures.Base("gpt2"));
        var sites = model.Sites();

        Snapshot.Verify(string.Join("\n", sites) + "\n", "gpt2.sites", "txt");
        Assert.Equal(8, sites.Count(s => s.Kind == SiteKind.Linear));   // 4 per layer
        Assert.Equal(6, sites.Count(s => s.Kind == SiteKind.Ia3));      // key, value, MLP per layer
        Assert.Equal(4, sites.Count(s => s.Kind == SiteKind.Adapter));  // after attention and MLP
        Assert.Single(sites, s => s.Kind == SiteKind.VirtualPrompt);
        var key = sites.Single(s => s.Name == SiteNames.Ia3Key && s.Layer == 1);
        Assert.Equal(("transformer.h.1.attn.c_attn", (32L, 32L)), (key.ModulePath, key.Slice!.Value));
    }

    [Fact]
    public void FilterSelectsByNemoSiteNameAndLayer()
    {
        using var model = Gpt2LMHeadModel.FromPretrained(Fixtures.Base("gpt2"));
        var selected = model.SelectParameters(new ParameterQuery(PeftMethod.Base, [SiteNames.AttentionQkv], [0]));
        Assert.Equal(["transformer.h.0.attn.c_attn.bias", "transformer.h.0.attn.c_attn.weight"], Names(selected));
        Assert.All(selected, p => Assert.Equal(0, p.Layer));
    }

    [Fact]
    public void FilterSelectsByPeftStyleModuleSuffix()
    {
        using var model = Gpt2LMHeadModel.FromPretrained(Fixtures.Base("gpt2"));
        var selected = model.SelectParameters(new ParameterQuery(Sites: [Gpt2LMHeadModel.Targets.mlp_c_proj]));
        Assert.Equal(["transformer.h.0.mlp.c_proj.bias", "transformer.h.0.mlp.c_proj.weight",
            "transformer.h.1.mlp.c_proj.bias", "transformer.h.1.mlp.c_proj.weight"], Names(selected));
    }

    [Fact]
    public void GroupedQuerySitesSelectQueryKeyAndValue()
    {
        using var model = LlamaForCausalLM.FromPretrained(Fixtures.Base("llama"));
        var selected = model.SelectParameters(new ParameterQuery(Sites: [SiteNames.AttentionQkv], Layers: [1]));
        Assert.Equal(["model.layers.1.self_attn.k_proj.weight", "model.layers.1.self_attn.q_proj.weight",
            "model.layers.1.self_attn.v_proj.weight"], Names(selected));
    }

    [Fact]
    public void LayerFilterAloneTakesTheWholeBlock()
    {
        using var model = LlamaForCausalLM.FromPretrained(Fixtures.Base("llama"));
        var selected = model.SelectParameters(new ParameterQuery(Layers: [0]));
        Assert.Equal(9, selected.Count); // 7 projections + 2 norms
        Assert.All(selected, p => Assert.StartsWith("model.layers.0.", p.Name));
    }

    [Fact]
    public void UnknownSiteIsAnErrorThatListsTheKnownOnes()
    {
        using var model = Gpt2LMHeadModel.FromPretrained(Fixtures.Base("gpt2"));
        var e = Assert.Throws<PeftDslException>(() => model.SelectParameters(new ParameterQuery(Sites: ["q_proj"])));
        Assert.Contains("site 'q_proj' matches no site", e.Message);
        Assert.Contains("attention_qkv", e.Message);
        Assert.Contains("c_attn", e.Message);
    }

    [Fact]
    public void NoMethodSelectionMatchesBeforeAnyAdapterIsAttached()
    {
        using var model = Gpt2LMHeadModel.FromPretrained(Fixtures.Base("gpt2"));
        Assert.Empty(model.SelectParameters(new ParameterQuery(PeftMethod.Lora)));
    }

    [Fact]
    public void TrainOnlyFreezesEverythingElse()
    {
        using var model = Gpt2LMHeadModel.FromPretrained(Fixtures.Base("gpt2"));
        model.TrainOnly(model.SelectParameters(new ParameterQuery(Sites: [SiteNames.MlpFc1])));
        var trainable = model.named_parameters().Where(p => p.parameter.requires_grad).Select(p => p.name).Order().ToList();
        Assert.Equal(["transformer.h.0.mlp.c_fc.bias", "transformer.h.0.mlp.c_fc.weight",
            "transformer.h.1.mlp.c_fc.bias", "transformer.h.1.mlp.c_fc.weight"], trainable);
    }

    private static string[] Names(IEnumerable<SelectedParameter> selected) =>
        selected.Select(p => p.Name).Order(StringComparer.Ordinal).ToArray();

    private static string FileListing(string directory)
    {
        using var reader = SafetensorsReader.Open(Path.Combine(directory, "model.safetensors"));
        return CheckpointLayout.Describe(reader.Entries.Values.Select(e => new CheckpointKey(e.Name, e.Shape)));
    }
}
