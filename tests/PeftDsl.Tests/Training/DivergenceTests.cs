using PeftDsl.Checkpoints.Safetensors;
using PeftDsl.Errors;
using PeftDsl.Training;
using Xunit;
using static TorchSharp.torch;

namespace PeftDsl.Tests.Training;

/// <summary>A run that diverges never leaves non-finite values in a checkpoint, and no command loads an adapter that
/// holds them.</summary>
[Collection(GlobalRandomness.Name)]
public sealed class DivergenceTests
{
    /// <summary>A finite loss with a non-finite gradient stops the run before the update, naming the step; the last
    /// checkpoint is the step before, and finite. A LoRA A of 1e25 gets there: B starts at zero, so the loss is finite,
    /// but the gradient overflows, at once or (once B has moved) in the next step's backward pass. Before, the update
    /// was applied (clipped to nothing, or NaN) and saved, and the run went on.</summary>
    [Fact]
    public void ANonFiniteGradientStopsTheRunBeforeTheUpdate()
    {
        var data = TrainerTests.Examples(8);
        using var dir = new TempDir();
        using var model = TrainerTests.Model();
        // One step first, so that B has moved off zero: then the overflow comes a step after a saved one.
        new Trainer(model, DataTests.LlamaTokenizer(), data, null, new TrainerOptions { MaxSteps = 1, BatchSize = 4 }, null).Run();
        using (no_grad()) model.model.layers[0].self_attn.q_proj.Lora.A("default").fill_(1e25f);
        var options = new TrainerOptions { MaxSteps = 4, BatchSize = 4, LogEvery = 1, SaveEvery = 1 };
        var e = Assert.Throws<TrainingDivergedException>(() => new Trainer(model, DataTests.LlamaTokenizer(), data, null, options, dir.Path).Run());
        Assert.Matches(@"^step \d: the gradient norm is (NaN|Infinity); stopped before the update\. Lower --lr or check the data$", e.Message);
        if (e.Step == 1)
        {
            Assert.False(TrainingCheckpoint.Exists(dir.Path));
            return;
        }
        Assert.Equal(e.Step - 1, TrainingCheckpoint.ReadState(dir.Path).Step);
        foreach (var (key, value) in Fixtures.ReadAll(Path.Combine(dir.Path, TrainingCheckpoint.AdapterFolder, "adapter_model.safetensors")))
            Assert.True(value.isfinite().all().item<bool>(), key);
    }

    /// <summary>An adapter file with a NaN is refused by every command that loads adapters, in one line naming the file
    /// and the tensor, with exit code 2; so is one with an infinity, and a prompt-learning adapter.</summary>
    [Theory]
    [InlineData("gpt2.lora", "inspect")]
    [InlineData("gpt2.lora", "generate")]
    [InlineData("gpt2.lora", "merge")]
    [InlineData("gpt2.ia3", "inspect")]
    [InlineData("gpt2.prompt", "generate")]
    public void AnAdapterHoldingNonFiniteValuesIsRefused(string adapterCase, string command)
    {
        using var dir = new TempDir();
        var adapter = dir.File("adapter");
        Directory.CreateDirectory(adapter);
        foreach (var f in Directory.GetFiles(Path.Combine(Fixtures.Directory, adapterCase)))
            File.Copy(f, Path.Combine(adapter, Path.GetFileName(f)));
        var weights = Path.Combine(adapter, "adapter_model.safetensors");
        var tensors = Fixtures.ReadAll(weights);
        var key = tensors.Keys.Order(StringComparer.Ordinal).First();
        tensors[key] = tensors[key].clone();
        tensors[key].view(-1)[0] = adapterCase.EndsWith("ia3") ? float.PositiveInfinity : float.NaN;
        SafetensorsWriter.Save(weights, tensors);

        string[] args = command switch
        {
            "inspect" => ["inspect", "--model", Fixtures.Base("gpt2"), "--adapter", adapter],
            "generate" => ["generate", "--model", Fixtures.Base("gpt2"), "--adapter", adapter, "--prompt-ids", "5 6 7", "--max-new-tokens", "2"],
            _ => ["merge", "--model", Fixtures.Base("gpt2"), "--adapter", adapter, "--out", dir.File("merged")],
        };
        var (code, stdout, stderr) = ParityTests.Peft(args);
        Assert.Equal(2, code);
        var line = Assert.Single(stderr.TrimEnd().Split('\n'));
        Assert.Equal($"error: {weights}: '{key}' holds NaN or infinite values; refusing to load it (was it saved by a run that diverged?)", line);
        Assert.False(Directory.Exists(dir.File("merged")));
    }

    /// <summary>The API refuses it too, before any weight of the model changes.</summary>
    [Fact]
    public void TheApiRefusesANonFiniteAdapter()
    {
        using var dir = new TempDir();
        using var model = TrainerTests.Model();
        model.Adapters.Save(dir.File("a"));
        var weights = dir.File("a/adapter_model.safetensors");
        var tensors = Fixtures.ReadAll(weights);
        var key = tensors.Keys.First(k => k.Contains("lora_B"));
        tensors[key] = full(tensors[key].shape, float.NaN);
        SafetensorsWriter.Save(weights, tensors);
        using var other = TrainerTests.Model();
        var e = Assert.Throws<PeftDslException>(() => other.Adapters.Load(dir.File("a"), "b"));
        Assert.Contains("holds NaN or infinite values", e.Message);
    }
}
