using PeftDsl.Models;
using PeftDsl.Models.Gemma2;
using PeftDsl.Models.Gemma3;
using PeftDsl.Models.Phi3;
using PeftDsl.Runtime;
using Xunit;
using static TorchSharp.torch;

namespace PeftDsl.Tests.Architectures;

/// <summary>Gemma 2, Gemma 3 and Phi-3 through a checkpoint folder, as a user meets them: config.json and
/// model.safetensors written, read back by model_type, the same logits.</summary>
public sealed class NewFamilyCheckpointTests
{
    public static TheoryData<string, string> Families => new()
    {
        { "gemma2", """{"model_type": "gemma2", "vocab_size": 64, "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16, "query_pre_attn_scalar": 16, "sliding_window": 3}""" },
        { "gemma3_text", """{"model_type": "gemma3_text", "vocab_size": 64, "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 3, "num_attention_heads": 4, "num_key_value_heads": 1, "head_dim": 16, "query_pre_attn_scalar": 16, "sliding_window": 3, "sliding_window_pattern": 3, "rope_scaling": {"rope_type": "linear", "factor": 8.0}, "rope_local_base_freq": 10000}""" },
        { "phi3", """{"model_type": "phi3", "vocab_size": 64, "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "partial_rotary_factor": 0.75, "max_position_embeddings": 32, "original_max_position_embeddings": 8, "tie_word_embeddings": true, "rope_scaling": {"type": "longrope", "short_factor": [1, 1, 1], "long_factor": [2, 4, 8]}}""" },
    };

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
