using System.Text.Json;
using PeftDsl.Testing;
using Xunit;

namespace PeftDsl.Tests.Training;

/// <summary>The main job's pipeline end to end (--quick: a few steps, so it checks the plumbing, not the learning).</summary>
public sealed class DemoTests
{
    [Fact]
    public void TheQuickDemoPrintsItsTablesKeepsTheBaseAndWritesItsRun()
    {
        using var dir = new TempDir();
        var (code, stdout, stderr) = ParityTests.Peft("demo", "--quick", "--out", dir.File("runs"), "--steps", "2");
        Assert.True(code == 0, stderr);
        Assert.Contains("bit-identical: the base was not touched", stdout);
        Assert.Contains("untrained base + adapter", stdout);
        Assert.Contains("all tasks in one mixed batch, each row with its own adapter", stdout);
        Assert.Contains("thing (P-tuning)", stdout);   // a prompt-learning row beside the LoRA rows
        Assert.Contains("pos (IA3)", stdout);
        Assert.True(File.Exists(Path.Combine(dir.File("runs"), "ia3", "adapter_model.safetensors")));
        Assert.True(File.Exists(Path.Combine(dir.File("runs"), "prompts", "prompt_table.json")));
        Assert.True(File.Exists(Path.Combine(dir.File("runs"), "thing-ptuning", "loss.png")));
        foreach (var task in new[] { "pos", "thing", "action" })
        {
            Assert.True(File.Exists(Path.Combine(dir.File("runs"), "adapters", task, "adapter_model.safetensors")), task);
            Assert.True(File.Exists(Path.Combine(dir.File("runs"), task, "loss.png")), task);
        }
        using var summary = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir.File("runs"), "summary.json")));
        Assert.Equal(summary.RootElement.GetProperty("base_checksum_before").GetString(), summary.RootElement.GetProperty("base_checksum_after").GetString());
        Assert.Equal(3, summary.RootElement.GetProperty("tasks").GetArrayLength());
        Assert.Equal("P_TUNING", summary.RootElement.GetProperty("prompt_learning").GetProperty("method").GetString());
        Assert.True(File.Exists(Path.Combine(dir.File("runs"), "data", "LICENSE-WordNet.txt")));
        Assert.Contains("wrote " + dir.File("runs") + ": data/, base-quick/, adapters/", stdout);
        Assert.Contains("try a held-out question (reference answer: ", stdout);

        (code, stdout, stderr) = ParityTests.Peft("demo", "--quick", "--out", dir.File("runs"), "--steps", "1");   // its own run: replaced
        Assert.True(code == 0, stderr);
    }

    /// <summary>--model runs the job on a given checkpoint folder: Llama, T5 and mT5 fixture bases with the test
    /// tokenizers (the GPT-2 test tokenizer is bytes, too long for the demo's questions).</summary>
    [Theory]
    [InlineData("llama", "llama-bpe.model", "tokenizer.model")]
    [InlineData("t5", "t5-unigram.model", "spiece.model")]
    [InlineData("mt5", "t5-unigram.model", "spiece.model")]
    public void TheDemoRunsOnAGivenCheckpoint(string family, string tokenizer, string asName)
    {
        using var dir = new TempDir();
        var model = dir.File(family);
        Directory.CreateDirectory(model);
        foreach (var file in Directory.GetFiles(Fixtures.Base(family))) File.Copy(file, Path.Combine(model, Path.GetFileName(file)));
        File.Copy(Repo.File("tests", "fixtures", "tokenizers", tokenizer), Path.Combine(model, asName));
        // The fixture Llama allows 64 positions, which the test tokenizer's long encodings exceed; RoPE has no
        // learned positions, so a longer limit is the same model.
        var config = Path.Combine(model, "config.json");
        File.WriteAllText(config, File.ReadAllText(config).Replace("\"max_position_embeddings\": 64", "\"max_position_embeddings\": 256"));
        var (code, stdout, stderr) = ParityTests.Peft("demo", "--quick", "--steps", "1", "--model", model, "--out", dir.File("runs"));
        Assert.True(code == 0, stderr);
        Assert.Contains("bit-identical: the base was not touched", stdout);
        Assert.Contains("wrote " + dir.File("runs") + ": data/, adapters/", stdout);
        Assert.DoesNotContain("untrained base", stdout);
        Assert.False(Directory.Exists(dir.File("runs/base")));
    }

    [Fact]
    public void BadOutputsAndModelsAreRefusedBeforeAnythingIsWritten()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("file"), "x");
        Directory.CreateDirectory(dir.File("mine"));
        File.WriteAllText(dir.File("mine/notes.txt"), "x");
        foreach (var (args, message) in new[]
                 {
                     (new[] { "--out", dir.File("file") }, "is a file; give a folder"),
                     (["--out", dir.File("mine")], "holds notes.txt, which is not part of a peft demo run"),
                     (["--out", dir.File("new"), "--model", dir.File("nope")], "--model " + dir.File("nope") + ": folder not found"),
                     (["--out", Path.Combine(Fixtures.Base("llama"), "run"), "--model", Fixtures.Base("llama")], "is or contains the model folder"),
                     (["--out", dir.File("new"), "--model", Fixtures.Base("llama")], "no usable tokenizer"),
                 })
        {
            var (code, _, stderr) = ParityTests.Peft(["demo", "--quick", .. args]);
            Assert.Equal(2, code);
            Assert.Contains(message, Assert.Single(stderr.TrimEnd().Split('\n')));
        }
        Assert.False(Directory.Exists(dir.File("new")));
        Assert.Equal(["notes.txt"], Directory.GetFileSystemEntries(dir.File("mine")).Select(Path.GetFileName));
    }
}
