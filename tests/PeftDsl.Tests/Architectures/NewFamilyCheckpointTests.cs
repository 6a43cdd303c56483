using PeftDsl.Models;
using PeftDsl.Models.Gemma2;
using PeftDsl.Models.Gemma3;
using PeftDsl.Models.Phi3;
using PeftDsl.Peft;
using PeftDsl.Runtime;
using Xunit;
using static TorchSharp.torch;

namespace PeftDsl.Tests.Architectures;

/// <summary>Gemma 2, Gemma 3 and Phi-3 through a checkpoint folder, as a user meets them: config.json and
/// model.safetensors written, read back by model_type, the same logits.</summary>
public sealed class NewFamilyCheckpointTests
{
    /// <summary>A tiny config.json per family: Gemma 2 with windows, Gemma 3 with linear rope and a local θ, Phi-3 with
    /// partial rotary and longrope.</summary>
    internal static readonly Dictionary<string, string> Configs = new()
    {
        ["gemma2"] = """{"model_type": "gemma2", "vocab_size": 64, "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16, "query_pre_attn_scalar": 16, "sliding_window": 3}""",
        ["gemma3_text"] = """{"model_type": "gemma3_text", "vocab_size": 64, "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 3, "num_attention_heads": 4, "num_key_value_heads": 1, "head_dim": 16, "query_pre_attn_scalar": 16, "sliding_window": 3, "sliding_window_pattern": 3, "rope_scaling": {"rope_type": "linear", "factor": 8.0}, "rope_local_base_freq": 10000}""",
        ["phi3"] = """{"model_type": "phi3", "vocab_size": 64, "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "partial_rotary_factor": 0.75, "max_position_embeddings": 32, "original_max_position_embeddings": 8, "tie_word_embeddings": true, "rope_scaling": {"type": "longrope", "short_factor": [1, 1, 1], "long_factor": [2, 4, 8]}}""",
    };

    public static TheoryData<string, string> Families
    {
        get
        {
            var data = new TheoryData<string, string>();
            foreach (var (family, config) in Configs) data.Add(family, config);
            return data;
        }
    }

    [Theory]
    [MemberData(nameof(Families))]
    public void ASavedFolderLoadsBackToTheSameLogits(string modelType, string config)
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("config.json"), config);
        manual_seed(3);
        var json = Config.ConfigJson.Parse(config, "config.json");
        using CausalLanguageModel model = modelType switch
        {
            "gemma2" => new Gemma2ForCausalLM(Gemma2Config.FromJson(json)),
            "gemma3_text" => new Gemma3ForCausalLM(Gemma3Config.FromJson(json)),
            _ => new Phi3ForCausalLM(Phi3Config.FromJson(json)),
        };
        using (no_grad())
            foreach (var (_, p) in model.named_parameters()) p.uniform_(-0.3, 0.3);
        model.SaveWeights(dir.File("model.safetensors"));
        using var loaded = StockModels.LoadCausal(dir.Path);
        var ids = tensor(new long[] { 3, 9, 27, 1, 50, 12, 33, 8, 41, 5 }).unsqueeze(0);   // 10 tokens: past Phi-3's original 8
        using var _ = no_grad();
        Assert.True(loaded.Logits(ids).allclose(model.Logits(ids), 0, 0), modelType);
    }
}

/// <summary>Gemma 3's multimodal folders (model_type gemma3) are refused with the way out.</summary>
public sealed class Gemma3MultimodalTests
{
    [Fact]
    public void AMultimodalFolderIsRefusedNamingTheTextOnlyType()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("config.json"), """{"model_type": "gemma3", "text_config": {"hidden_size": 32}}""");
        var e = Assert.Throws<Errors.ConfigException>(() => StockModels.LoadGenerative(dir.Path));
        Assert.StartsWith(dir.File("config.json") + ": model_type 'gemma3' is not supported", e.Message);
        Assert.EndsWith("Gemma 3's multimodal checkpoints are not, but a text-only gemma3_text folder is", e.Message);
    }
}

/// <summary>Every PEFT method peft supports on the new families trains on them: LoRA and IA3 with peft's defaults
/// (Phi-3, which peft has none for, with named targets), prompt tuning, P-tuning, prefix tuning and bottleneck adapters.
/// One step each: a finite loss, a gradient on every trainable tensor (for a fresh bottleneck adapter, on its zero output
/// layer), and the base frozen.</summary>
public sealed class NewFamilyMethodTests
{
    public static TheoryData<string, string> Cases()
    {
        var data = new TheoryData<string, string>();
        foreach (var family in new[] { "gemma2", "gemma3_text", "phi3" })
            foreach (var method in new[] { "lora", "ia3", "prompt", "ptuning", "prefix", "adapter" })
                data.Add(family, method);
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void OneTrainingStepReachesEveryTrainableTensor(string family, string method)
    {
        var json = Config.ConfigJson.Parse(NewFamilyCheckpointTests.Configs[family], "config.json");
        manual_seed(8);
        using CausalLanguageModel model = family switch
        {
            "gemma2" => new Gemma2ForCausalLM(Gemma2Config.FromJson(json)),
            "gemma3_text" => new Gemma3ForCausalLM(Gemma3Config.FromJson(json)),
            _ => new Phi3ForCausalLM(Phi3Config.FromJson(json)),
        };
        var phi = family == "phi3";
        switch (method)
        {
            case "lora":
                model.Adapters.Add("a", phi ? new Peft.Lora.LoraConfig { TargetModules = ["qkv_proj", "gate_up_proj"] } with { InitLoraWeights = Peft.Lora.LoraInit.Off }
                    : new Peft.Lora.LoraConfig { InitLoraWeights = Peft.Lora.LoraInit.Off });
                break;
            case "ia3":
                model.Ia3.Add("a", phi ? new Peft.Ia3.Ia3Config { TargetModules = ["qkv_proj", "down_proj"], FeedforwardModules = ["down_proj"] } : new Peft.Ia3.Ia3Config());
                break;
            case "adapter":
                model.Bottleneck.Add("a", new Peft.Adapters.BottleneckConfig { AdapterDim = 4 });
                break;
            default:
                model.Prompts.Add("a", new Peft.Prompts.PromptConfig
                {
                    Method = method switch { "prompt" => Peft.Prompts.PromptMethod.PromptTuning, "ptuning" => Peft.Prompts.PromptMethod.PTuning, _ => Peft.Prompts.PromptMethod.PrefixTuning },
                    NumVirtualTokens = 3,
                });
                model.Prompts.SetActive("a");
                break;
        }
        model.train();
        var ids = tensor(new long[] { 3, 9, 27, 1, 50, 12, 33, 8, 41, 5 }).unsqueeze(0);
        var loss = model.Forward(ids, labels: ids).Loss!;
        Assert.True(float.IsFinite(loss.item<float>()));
        loss.backward();
        var trainable = model.TrainableParameters();
        Assert.NotEmpty(trainable);
        static bool Moved(SelectedParameter p) => p.Parameter.grad is { } g && g.abs().sum().item<float>() > 0;
        // A fresh bottleneck adapter's output layer is zero, so at the first step only that layer gets a gradient.
        if (method == "adapter") Assert.Contains(trainable, Moved);
        else Assert.All(trainable, p => Assert.True(Moved(p), $"{p.Name} got no gradient"));
        Assert.All(model.AllParameters().Where(p => p.Method == Peft.PeftMethod.Base), p => Assert.False(p.Parameter.requires_grad, p.Name));
    }
}
