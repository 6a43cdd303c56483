using PeftDsl.Config;
using PeftDsl.Models.Gemma2;
using PeftDsl.Models.Llama;
using PeftDsl.Peft;
using PeftDsl.Peft.Lora;
using PeftDsl.Runtime;
using Xunit;
using static TorchSharp.torch;

namespace PeftDsl.Tests.Training;

/// <summary>The chunked LM head and loss (<see cref="ChunkedLoss"/>) give the plain path's loss and gradients, for
/// the hidden states' side (adapters) and the head's own tensors (full fine-tuning, a tied embedding, trainable
/// tokens), with soft-capped logits, in training and in evaluation.</summary>
public sealed class ChunkedLossTests
{
    private static readonly Tensor Ids = tensor(new long[,] { { 5, 17, 3, 60, 44, 8, 61 }, { 9, 2, 33, 7, 1, 0, 0 } });
    private static readonly Tensor Mask = tensor(new long[,] { { 1, 1, 1, 1, 1, 1, 1 }, { 1, 1, 1, 1, 1, 0, 0 } });
    private static readonly Tensor Labels = tensor(new long[,] { { -100, -100, 3, 60, 44, 8, 61 }, { -100, 2, 33, 7, 1, -100, -100 } });

    public static TheoryData<string, long> Cases()
    {
        var data = new TheoryData<string, long>();
        foreach (var setup in new[] { "llama-lora", "llama-full", "gemma2-tokens" })
            foreach (var chunk in new long[] { 1, 3, 5 })
                data.Add(setup, chunk);
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void TheLossAndEveryGradientAreThePlainPaths(string setup, long chunk)
    {
        manual_seed(6);
        using CausalLanguageModel model = setup.StartsWith("llama")
            ? LlamaForCausalLM.FromPretrained(Fixtures.Base("llama"))
            : new Gemma2ForCausalLM(Gemma2Config.FromJson(ConfigJson.Parse("""
                {"vocab_size": 64, "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2, "num_attention_heads": 4,
                 "num_key_value_heads": 2, "head_dim": 8, "sliding_window": 3, "final_logit_softcapping": 2.0}
                """, "config.json")));
        if (setup == "llama-lora") model.Adapters.Add("a", new LoraConfig { R = 2, TargetModules = ["all"], InitLoraWeights = LoraInit.Off });
        if (setup == "gemma2-tokens") model.Adapters.Add("a", new LoraConfig { R = 2, TargetModules = ["q_proj"], InitLoraWeights = LoraInit.Off, TrainableTokenIndices = [3, 60] });
        model.train();
        var trainable = model.TrainableParameters();
        if (setup == "llama-full") Assert.Contains(trainable, p => p.Name == "lm_head.weight");
        if (setup == "gemma2-tokens") Assert.Contains(trainable, p => p.Name.EndsWith("trainable_tokens_delta.a"));
        var results = new List<(float Loss, Tensor[] Grads)>();
        foreach (var chunked in new[] { false, true })
        {
            model.zero_grad();
            var loss = chunked ? model.Loss(Ids, Mask, Labels, chunk: chunk) : model.Forward(Ids, Mask, Labels).Loss!;
            loss.backward();
            results.Add((loss.item<float>(), trainable.Select(p => p.Parameter.grad!.clone()).ToArray()));
        }
        Assert.Equal(results[0].Loss, results[1].Loss, 5);
        for (var i = 0; i < trainable.Count; i++)
            Assert.True(results[0].Grads[i].allclose(results[1].Grads[i], rtol: 1e-4, atol: 1e-6), $"{trainable[i].Name}: max |Δ| = {(results[0].Grads[i] - results[1].Grads[i]).abs().max().item<float>()}");
        using (no_grad())
            Assert.Equal(results[0].Loss, model.Loss(Ids, Mask, Labels, chunk: chunk).item<float>(), 5);
    }

    [Fact]
    public void NoTargetsGiveThePlainPathsNaNAndABadChunkIsRefused()
    {
        using var model = LlamaForCausalLM.FromPretrained(Fixtures.Base("llama"));
        using var _ = no_grad();
        var none = full_like(Labels, Losses.IgnoreIndex);
        Assert.True(float.IsNaN(model.Loss(Ids, Mask, none, chunk: 2).item<float>()));
        Assert.True(float.IsNaN(model.Forward(Ids, Mask, none).Loss!.item<float>()));
        var e = Assert.Throws<Errors.PeftDslException>(() => model.Loss(Ids, Mask, Labels, chunk: 0));
        Assert.Equal("the loss chunk must be a positive number of positions, got 0", e.Message);
    }
}
