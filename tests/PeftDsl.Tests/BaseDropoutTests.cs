using System.Text.Json.Nodes;
using PeftDsl.Models.Gpt2;
using PeftDsl.Models.Llama;
using PeftDsl.Models.T5;
using PeftDsl.Modules;
using PeftDsl.Runtime;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace PeftDsl.Tests;

/// <summary>
/// The base model's own dropout, where transformers puts it. A rate of 1 zeroes exactly one kind of tensor, so each
/// placement is checked against the plain model with the weights that make that tensor zero; rates in between are
/// checked for being seeded, and for acting in training only.
/// </summary>
[Collection(GlobalRandomness.Name)]
public sealed class BaseDropoutTests
{
    private static Tensor Ids => tensor(new long[,] { { 5, 17, 300, 42, 7, 99 }, { 1, 2, 3, 4, 5, 6 } });

    /// <summary>GPT-2's <c>embd_pdrop</c> acts on wte + wpe: at 1 the blocks see zeros.</summary>
    [Fact]
    public void Gpt2EmbeddingDropoutActsOnTheEmbeddings()
    {
        using var dir = new TempDir();
        using var dropped = Gpt2(dir, ("embd_pdrop", 1.0));
        using var zeroed = Gpt2(dir, ("embd_pdrop", 0.0));
        using (no_grad())
        {
            zeroed.transformer.wte.weight.zero_();
            zeroed.transformer.wpe.weight.zero_();
        }
        AssertTrainEqualsEval(dropped, zeroed);
    }

    /// <summary>GPT-2's <c>attn_pdrop</c> acts on the attention probabilities: at 1 the attention output is c_proj's
    /// bias alone, as if c_proj's weight were zero.</summary>
    [Fact]
    public void Gpt2AttentionDropoutActsOnTheAttentionProbabilities()
    {
        using var dir = new TempDir();
        using var dropped = Gpt2(dir, ("attn_pdrop", 1.0));
        using var zeroed = Gpt2(dir, ("attn_pdrop", 0.0));
        using (no_grad())
            foreach (var block in zeroed.transformer.h) block.attn.c_proj.weight.zero_();
        AssertTrainEqualsEval(dropped, zeroed);
    }

    /// <summary>GPT-2's <c>resid_pdrop</c> acts on what attention and MLP add to the residual stream: at 1 the
    /// logits are the embeddings' through ln_f and the head.</summary>
    [Fact]
    public void Gpt2ResidualDropoutActsOnBothSublayerOutputs()
    {
        using var dir = new TempDir();
        using var dropped = Gpt2(dir, ("resid_pdrop", 1.0));
        using var zeroed = Gpt2(dir, ("resid_pdrop", 0.0));
        using (no_grad())
            foreach (var block in zeroed.transformer.h)
                foreach (var projection in new[] { block.attn.c_proj, block.mlp.c_proj })
                {
                    projection.weight.zero_();
                    projection.bias!.zero_();
                }
        AssertTrainEqualsEval(dropped, zeroed);
    }

    /// <summary>Llama's <c>attention_dropout</c>, through rotary grouped-query SDPA: at 1 o_proj reads zeros.</summary>
    [Fact]
    public void LlamaAttentionDropoutActsOnTheAttentionProbabilities()
    {
        using var dir = new TempDir();
        using var dropped = Load<LlamaForCausalLM>("llama", dir, ("attention_dropout", 1.0));
        using var zeroed = Load<LlamaForCausalLM>("llama", dir, ("attention_dropout", 0.0));
        using (no_grad())
            foreach (var layer in zeroed.model.layers) layer.self_attn.o_proj.weight.zero_();
        AssertTrainEqualsEval(dropped, zeroed);
    }

    /// <summary>T5's <c>dropout_rate</c> ends each stack: at 1 the encoder output and the decoder's logits are zero in
    /// training; with <see cref="LanguageModel.BaseDropout"/> 0, training computes what evaluation computes.</summary>
    [Fact]
    public void T5DropoutEndsEachStackAndCanBeTurnedOff()
    {
        using var dir = new TempDir();
        using var model = Load<T5ForConditionalGeneration>("t5", dir, ("dropout_rate", 1.0));
        using var scope = NewDisposeScope();
        var decoderIds = tensor(new long[,] { { 0, 4, 9 }, { 0, 8, 2 } });
        model.train();
        Assert.Equal(0, model.Encode(Ids, null).abs().max().item<float>());
        Assert.Equal(0, model.Forward(Ids, null, decoderIds).Logits.abs().max().item<float>());

        model.eval();
        Tensor evaluated;
        using (no_grad()) evaluated = model.Forward(Ids, null, decoderIds).Logits;
        Assert.True(evaluated.abs().max().item<float>() > 0);
        model.train();
        model.BaseDropout = 0;
        using (no_grad()) Assert.True(model.Forward(Ids, null, decoderIds).Logits.equal(evaluated).all().item<bool>());
    }

    /// <summary>Between 0 and 1: training is seeded (the same seed draws the same masks), differs from evaluation,
    /// and evaluation ignores the rates altogether.</summary>
    [Fact]
    public void DropoutIsSeededAndActsInTrainingOnly()
    {
        using var dir = new TempDir();
        using var model = Gpt2(dir, ("embd_pdrop", 0.5), ("attn_pdrop", 0.5), ("resid_pdrop", 0.5));
        using var plain = Gpt2(dir);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        model.eval();
        plain.eval();
        var evaluated = model.Logits(Ids);
        Assert.True(evaluated.equal(plain.Logits(Ids)).all().item<bool>(), "evaluation must not drop");
        model.train();
        manual_seed(11);
        var first = model.Logits(Ids);
        manual_seed(11);
        Assert.True(first.equal(model.Logits(Ids)).all().item<bool>(), "the same seed must draw the same masks");
        Assert.False(first.allclose(evaluated, rtol: 0, atol: 1e-3));
        model.BaseDropout = 0;
        Assert.True(model.Logits(Ids).equal(evaluated).all().item<bool>(), "--base-dropout 0 must train the plain model");
    }

    /// <summary>A rate outside [0, 1] in config.json is refused by name; so is an override outside it.</summary>
    [Fact]
    public void RatesOutsideZeroToOneAreRefused()
    {
        using var dir = new TempDir();
        var e = Assert.Throws<Errors.ConfigException>(() => Gpt2(dir, ("resid_pdrop", 1.5)));
        Assert.Contains("resid_pdrop = 1.5 must be a dropout probability in [0, 1]", e.Message);
        using var model = Gpt2(dir);
        Assert.Throws<Errors.PeftDslException>(() => model.BaseDropout = -0.1);
        Assert.Throws<Errors.PeftDslException>(() => model.BaseDropout = double.NaN);
    }

    private static void AssertTrainEqualsEval(CausalLanguageModel dropped, CausalLanguageModel reference)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        dropped.train();
        reference.eval();
        var trained = dropped.Logits(Ids);
        var expected = reference.Logits(Ids);
        Assert.True(trained.allclose(expected, rtol: 0, atol: 1e-5), $"max difference {(trained - expected).abs().max().item<float>()}");
        dropped.eval();
        Assert.False(dropped.Logits(Ids).allclose(expected, rtol: 0, atol: 1e-3), "the check must depend on the dropout");
    }

    private static Gpt2LMHeadModel Gpt2(TempDir dir, params (string Key, double Value)[] rates) => Load<Gpt2LMHeadModel>("gpt2", dir, rates);

    /// <summary>The family's fixture base with <paramref name="rates"/> written into a copy of its config.json.</summary>
    private static T Load<T>(string family, TempDir dir, params (string Key, double Value)[] rates) where T : LanguageModel
    {
        var folder = dir.File(family + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(folder);
        foreach (var f in Directory.GetFiles(Fixtures.Base(family))) File.Copy(f, Path.Combine(folder, Path.GetFileName(f)));
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(folder, "config.json")))!.AsObject();
        foreach (var (key, value) in rates) config[key] = value;
        File.WriteAllText(Path.Combine(folder, "config.json"), config.ToJsonString());
        return (T)(object)(typeof(T).Name switch
        {
            nameof(Gpt2LMHeadModel) => Gpt2LMHeadModel.FromPretrained(folder),
            nameof(LlamaForCausalLM) => LlamaForCausalLM.FromPretrained(folder),
            _ => T5ForConditionalGeneration.FromPretrained(folder),
        });
    }
}
