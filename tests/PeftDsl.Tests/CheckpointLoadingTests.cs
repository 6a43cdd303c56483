using System.Text.Json;
using System.Text.Json.Nodes;
using PeftDsl.Checkpoints;
using PeftDsl.Checkpoints.Safetensors;
using PeftDsl.Errors;
using PeftDsl.Models.Gpt2;
using PeftDsl.Models.Llama;
using PeftDsl.Runtime;
using Xunit;
using static TorchSharp.torch;

namespace PeftDsl.Tests;

/// <summary>Hugging Face folders in every supported layout, and every kind of bad one.</summary>
public sealed class CheckpointLoadingTests
{
    private static readonly Tensor Ids = tensor(new long[,] { { 5, 17, 301, 42, 7, 99 } });

    [Fact]
    public void ShardedCheckpointLoadsLikeTheSingleFile()
    {
        using var dir = new TempDir();
        var tensors = Fixtures.ReadAll(Path.Combine(Fixtures.Base("gpt2"), "model.safetensors"));
        var names = tensors.Keys.Order(StringComparer.Ordinal).ToList();
        var half = names.Count / 2;
        var shards = new[] { names[..half], names[half..] };
        var weightMap = new JsonObject();
        for (var i = 0; i < shards.Length; i++)
        {
            var file = $"model-{i + 1:00000}-of-00002.safetensors";
            SafetensorsWriter.Save(dir.File(file), shards[i].ToDictionary(n => n, n => tensors[n]));
            foreach (var n in shards[i]) weightMap[n] = file;
        }
        File.WriteAllText(dir.File("model.safetensors.index.json"), new JsonObject { ["weight_map"] = weightMap }.ToJsonString());
        File.Copy(Path.Combine(Fixtures.Base("gpt2"), "config.json"), dir.File("config.json"));

        using var sharded = Gpt2LMHeadModel.FromPretrained(dir.Path);
        using var single = Gpt2LMHeadModel.FromPretrained(Fixtures.Base("gpt2"));
        Assert.True(Logits(sharded).allclose(Logits(single), rtol: 0, atol: 0));
    }

    [Theory]
    [InlineData(ScalarType.BFloat16, 5e-3, 1e-2)]
    [InlineData(ScalarType.Float16, 5e-4, 1e-3)]
    public void HalfPrecisionCheckpointsLoadIntoFp32AndIntoTheirOwnDType(ScalarType dtype, double widenedTolerance, double nativeTolerance)
    {
        using var dir = new TempDir();
        Fixtures.CopyBase("llama", dir);
        var tensors = Fixtures.ReadAll(dir.File("model.safetensors"));
        SafetensorsWriter.Save(dir.File("model.safetensors"), tensors.ToDictionary(t => t.Key, t => t.Value.to(dtype)));

        using var reference = LlamaForCausalLM.FromPretrained(Fixtures.Base("llama"));
        using var widened = LlamaForCausalLM.FromPretrained(dir.Path);
        using var native = LlamaForCausalLM.FromPretrained(dir.Path, new ModelLoadOptions(dtype));

        Assert.Equal(ScalarType.Float32, widened.lm_head.weight!.dtype);
        Assert.Equal(dtype, native.lm_head.weight!.dtype);
        var expected = Logits(reference);
        // Rounding the weights costs about 1e-3 (bf16) or 1e-4 (fp16) on these logits; computing in that
        // dtype roughly doubles it. A wrong load would be off by the logits' own scale (~0.4).
        Assert.True(Logits(widened).allclose(expected, rtol: 0, atol: widenedTolerance));
        Assert.True(Logits(native).to(ScalarType.Float32).allclose(expected, rtol: 0, atol: nativeTolerance));
    }

    [Fact]
    public void CheckpointSavedFromTheBareBodyLoads()
    {
        using var dir = new TempDir();
        Fixtures.CopyBase("gpt2", dir);
        var tensors = Fixtures.ReadAll(dir.File("model.safetensors"));
        SafetensorsWriter.Save(dir.File("model.safetensors"),
            tensors.ToDictionary(t => t.Key.Replace("transformer.", ""), t => t.Value));

        using var bare = Gpt2LMHeadModel.FromPretrained(dir.Path);
        using var full = Gpt2LMHeadModel.FromPretrained(Fixtures.Base("gpt2"));
        Assert.True(Logits(bare).allclose(Logits(full), rtol: 0, atol: 0));
    }

    [Fact]
    public void StaleBuffersAndATiedHeadCopyAreAccepted()
    {
        using var dir = new TempDir();
        Fixtures.CopyBase("gpt2", dir);
        var tensors = Fixtures.ReadAll(dir.File("model.safetensors"));
        tensors["transformer.h.0.attn.bias"] = ones(1, 1, 64, 64);
        tensors["transformer.h.1.attn.masked_bias"] = tensor(-1e4f);
        tensors["lm_head.weight"] = tensors["transformer.wte.weight"];
        SafetensorsWriter.Save(dir.File("model.safetensors"), tensors);

        using var model = Gpt2LMHeadModel.FromPretrained(dir.Path);
        Assert.True(model.lm_head.IsTied);
    }

    [Fact]
    public void MissingUnexpectedAndMisShapedKeysAreAllListed()
    {
        using var dir = new TempDir();
        Fixtures.CopyBase("gpt2", dir);
        var tensors = Fixtures.ReadAll(dir.File("model.safetensors"));
        tensors.Remove("transformer.h.0.ln_1.weight");
        tensors["transformer.h.0.attn.extra"] = zeros(3);
        tensors["transformer.h.1.attn.c_attn.weight"] = zeros(96, 32);
        SafetensorsWriter.Save(dir.File("model.safetensors"), tensors);

        var e = Assert.Throws<CheckpointMismatchException>(() => Gpt2LMHeadModel.FromPretrained(dir.Path));
        Assert.Equal(["transformer.h.0.ln_1.weight"], e.Missing);
        Assert.Equal(["transformer.h.0.attn.extra"], e.Unexpected);
        Assert.Equal(["transformer.h.1.attn.c_attn.weight: checkpoint [96, 32], model expects [32, 96]"], e.WrongShape);
        Assert.Contains("missing keys (1):", e.Message);
        Assert.Contains("unexpected keys (1):", e.Message);
        Assert.Contains("wrong shapes (1):", e.Message);
    }

    [Fact]
    public void ConfigThatDisagreesWithTheWeightsIsAShapeMismatch()
    {
        using var dir = new TempDir();
        Fixtures.CopyBase("llama", dir);
        var config = JsonNode.Parse(File.ReadAllText(dir.File("config.json")))!;
        config["intermediate_size"] = 96;
        File.WriteAllText(dir.File("config.json"), config.ToJsonString());

        var e = Assert.Throws<CheckpointMismatchException>(() => LlamaForCausalLM.FromPretrained(dir.Path));
        Assert.Equal(6, e.WrongShape.Count); // gate, up, down in each of 2 layers
        Assert.Empty(e.Missing);
    }

    /// <summary>A config that lies about sizes is refused before anything is allocated: a 2-billion-row vocabulary
    /// (which would crash the allocator) and a hundred million layers (which would hang listing them).</summary>
    [Theory]
    [InlineData("vocab_size", 2000000000, "model.embed_tokens.weight: checkpoint [512, 32], model expects [2000000000, 32]")]
    [InlineData("num_hidden_layers", 100000000, "num_hidden_layers = 100000000, but the checkpoint holds only")]
    [InlineData("hidden_size", 1000000, "config.json implies larger tensors than it stores")]
    public void AConfigThatLiesAboutSizesIsRefusedBeforeAllocating(string key, long value, string message)
    {
        using var dir = new TempDir();
        Fixtures.CopyBase("llama", dir);
        var config = JsonNode.Parse(File.ReadAllText(dir.File("config.json")))!;
        config[key] = value;
        if (key == "hidden_size") config["head_dim"] = null;
        File.WriteAllText(dir.File("config.json"), config.ToJsonString());
        var e = Assert.ThrowsAny<PeftDslException>(() => LlamaForCausalLM.FromPretrained(dir.Path));
        Assert.Contains(message, e.Message);
    }

    [Fact]
    public void TruncatedWeightsNameTheFile()
    {
        using var dir = new TempDir();
        Fixtures.CopyBase("gpt2", dir);
        var bytes = File.ReadAllBytes(dir.File("model.safetensors"));
        File.WriteAllBytes(dir.File("model.safetensors"), bytes[..(bytes.Length / 2)]);

        var e = Assert.Throws<CheckpointException>(() => Gpt2LMHeadModel.FromPretrained(dir.Path));
        Assert.Contains("model.safetensors", e.Message);
        Assert.Contains("truncated", e.Message);
    }

    [Fact]
    public void WrongFamilyIsRejectedBeforeBinding()
    {
        var e = Assert.Throws<CheckpointException>(() => Gpt2LMHeadModel.FromPretrained(Fixtures.Base("llama")));
        Assert.Contains("model_type is 'llama', but Gpt2LMHeadModel reads 'gpt2' checkpoints", e.Message);
        var t5 = Assert.Throws<CheckpointException>(() => Models.T5.T5ForConditionalGeneration.FromPretrained(Fixtures.Base("gpt2")));
        Assert.Contains("model_type is 'gpt2', but T5ForConditionalGeneration reads 't5' or 'mt5' checkpoints", t5.Message);
    }

    [Fact]
    public void IndivisibleHeadsFromConfigJsonNameTheKeys()
    {
        using var dir = new TempDir();
        Fixtures.CopyBase("gpt2", dir);
        var config = JsonNode.Parse(File.ReadAllText(dir.File("config.json")))!;
        config["n_head"] = 5;
        File.WriteAllText(dir.File("config.json"), config.ToJsonString());

        var e = Assert.Throws<ConfigException>(() => Gpt2LMHeadModel.FromPretrained(dir.Path));
        Assert.Equal($"{dir.File("config.json")}: Gpt2Attention: n_embd = 32 is not divisible by n_head = 5", e.Message);
    }

    [Fact]
    public void MissingFilesAreClearErrors()
    {
        using var dir = new TempDir();
        Assert.Contains("checkpoint folder not found", Assert.Throws<CheckpointException>(() => Gpt2LMHeadModel.FromPretrained(dir.File("nope"))).Message);
        Assert.Contains("no config.json", Assert.Throws<CheckpointException>(() => Gpt2LMHeadModel.FromPretrained(dir.Path)).Message);
        File.Copy(Path.Combine(Fixtures.Base("gpt2"), "config.json"), dir.File("config.json"));
        File.WriteAllText(dir.File("pytorch_model.bin"), "");
        var e = Assert.Throws<CheckpointException>(() => Gpt2LMHeadModel.FromPretrained(dir.Path));
        Assert.Contains("neither model.safetensors nor model.safetensors.index.json", e.Message);
        Assert.Contains("pytorch_model.bin is not read", e.Message);
    }

    [Theory]
    [InlineData("""{"weight_map": {"transformer.wte.weight": "missing.safetensors"}}""", "shard 'missing.safetensors'")]
    [InlineData("""{"weight_map": {"transformer.wte.weight": "../escape.safetensors"}}""", "must be a plain file name")]
    [InlineData("""{"weight_map": {"not.in.the.shard": "model-1.safetensors"}}""", "does not contain it")]
    [InlineData("""{"metadata": {}}""", "no \"weight_map\" object")]
    [InlineData("""{"weight_map": """, "not valid JSON")]
    public void BadShardIndexIsAClearError(string index, string message)
    {
        using var dir = new TempDir();
        File.Copy(Path.Combine(Fixtures.Base("gpt2"), "config.json"), dir.File("config.json"));
        File.Copy(Path.Combine(Fixtures.Base("gpt2"), "model.safetensors"), dir.File("model-1.safetensors"));
        File.WriteAllText(dir.File("model.safetensors.index.json"), index);

        var e = Assert.Throws<CheckpointException>(() => CheckpointFolder.Open(dir.Path));
        Assert.Contains(message, e.Message);
        Assert.Contains("model.safetensors.index.json", e.Message);
    }

    private static Tensor Logits(CausalLanguageModel model)
    {
        model.eval();
        using var _ = no_grad();
        return model.Forward(Ids).Logits;
    }
}

public sealed class CheckpointSavingTests
{
    /// <summary>An integer tensor where the model has a float weight (same shape) is refused by name, not converted.</summary>
    [Fact]
    public void AnIntegerTensorForAFloatWeightIsRefused()
    {
        using var dir = new TempDir();
        Fixtures.CopyBase("gpt2", dir);
        var tensors = Fixtures.ReadAll(dir.File("model.safetensors"));
        var key = tensors.Keys.First(k => k.EndsWith("ln_f.weight", StringComparison.Ordinal));
        tensors[key] = tensors[key].to(ScalarType.Int32);
        PeftDsl.Checkpoints.Safetensors.SafetensorsWriter.Save(dir.File("model.safetensors"), tensors);
        var e = Assert.ThrowsAny<CheckpointException>(() => Gpt2LMHeadModel.FromPretrained(dir.Path));
        Assert.Contains($"{key}: stored as Int32, but the model's weight is floating point; not converted", e.Message);
    }

    [Fact]
    public void SavedWeightsRoundTripInHuggingFaceLayout()
    {
        using var dir = new TempDir();
        Fixtures.CopyBase("gpt2", dir);
        using (var model = Gpt2LMHeadModel.FromPretrained(Fixtures.Base("gpt2")))
        {
            // The copied base is there already: replaced only when asked; a folder is never a weights file.
            var e = Assert.Throws<CheckpointException>(() => model.SaveWeights(dir.File("model.safetensors")));
            Assert.Equal($"{dir.File("model.safetensors")}: already exists; pass overwrite: true to replace it", e.Message);
            e = Assert.Throws<CheckpointException>(() => model.SaveWeights(dir.Path));
            Assert.StartsWith($"{dir.Path}: is a folder; give the path of the .safetensors file to write", e.Message);
            model.SaveWeights(dir.File("model.safetensors"), overwrite: true);
        }

        var original = Fixtures.ReadAll(Path.Combine(Fixtures.Base("gpt2"), "model.safetensors"));
        var saved = Fixtures.ReadAll(dir.File("model.safetensors"));
        Assert.Equal(original.Keys.Order(), saved.Keys.Order());
        foreach (var (key, tensor) in original)
            Assert.True(tensor.equal(saved[key]).all().item<bool>(), key); // Conv1D transposed back exactly
    }
}
