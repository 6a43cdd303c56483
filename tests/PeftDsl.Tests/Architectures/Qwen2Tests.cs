using PeftDsl.Config;
using PeftDsl.Models.Llama;
using PeftDsl.Models.Qwen2;
using PeftDsl.Peft.Lora;
using Xunit;
using static TorchSharp.torch;

namespace PeftDsl.Tests.Architectures;

/// <summary>Qwen2 (Qwen2.5) on the CPU. Not yet checked against transformers (tools/fixtures/make-arch.py has the case,
/// to be generated on a GPU machine); here it is checked against its definition: Llama's network with biases on q, k
/// and v only, so a Llama with the same weights, attention_bias on and a zero o_proj bias computes the same logits.</summary>
public sealed class Qwen2Tests
{
    private const string Sizes = """
        "vocab_size": 96, "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2, "max_position_embeddings": 64, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0
        """;

    [Fact]
    public void Qwen2IsLlamaWithBiasedQueriesKeysAndValuesOnly()
    {
        manual_seed(3);
        using var qwen = new Qwen2ForCausalLM(Qwen2Config.FromJson(ConfigJson.Parse($$"""{{{Sizes}}, "use_sliding_window": false, "sliding_window": 16}""", "qwen2.json")));
        using var llama = new LlamaForCausalLM(LlamaConfig.FromJson(ConfigJson.Parse($$"""{{{Sizes}}, "attention_bias": true}""", "llama.json")));
        var qwenParameters = qwen.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        Assert.Contains("model.layers.0.self_attn.q_proj.bias", qwenParameters.Keys);
        Assert.Contains("model.layers.1.self_attn.v_proj.bias", qwenParameters.Keys);
        Assert.DoesNotContain("model.layers.0.self_attn.o_proj.bias", qwenParameters.Keys);
        Assert.DoesNotContain(qwenParameters.Keys, k => k.Contains("mlp") && k.EndsWith(".bias"));
        using (no_grad())
        {
            foreach (var (name, parameter) in llama.named_parameters())
            {
                if (qwenParameters.TryGetValue(name, out var source)) parameter.copy_(source);
                else if (name.EndsWith("o_proj.bias")) parameter.zero_();
                else Assert.Fail($"Llama has {name}, which Qwen2 lacks");
            }
            // Random biases, so a bias that is dropped or misplaced shows.
            foreach (var (name, parameter) in qwen.named_parameters().Where(p => p.name.EndsWith(".bias")))
            {
                parameter.normal_(0, 0.5);
                llama.named_parameters().Single(p => p.name == name).parameter.copy_(parameter);
            }
            var ids = tensor(new long[,] { { 5, 17, 3, 90, 44, 8, 61 } });
            var expected = llama.Logits(ids);
            var actual = qwen.Logits(ids);
            Assert.True(allclose(actual, expected, rtol: 0, atol: 1e-6), $"max |Δ| = {(actual - expected).abs().max().item<float>()}");
        }
    }

    [Theory]
    [InlineData("\"rope_scaling\": {\"type\": \"yarn\", \"factor\": 4.0}", "\"rope_scaling.type\": \"yarn\" is not computed by Qwen2Config.RopeType")]
    [InlineData("\"use_sliding_window\": true, \"sliding_window\": 16", "sliding_window")]
    public void ConfigsItDoesNotComputeAreRefused(string extra, string message)
    {
        var e = Assert.ThrowsAny<Errors.PeftDslException>(() => Qwen2Config.FromJson(ConfigJson.Parse($$"""{{{Sizes}}, {{extra}}}""", "config.json")));
        Assert.StartsWith("config.json: ", e.Message);
        Assert.Contains(message, e.Message);
    }

    [Fact]
    public void PeftsDefaultTargetsForQwen2()
    {
        Assert.Equal(["q_proj", "v_proj"], LoraTargets.EffectiveTargets(new LoraConfig(), "qwen2", "adapter_config.json"));
    }
}
