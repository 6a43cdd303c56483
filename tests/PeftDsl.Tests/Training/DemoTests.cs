using System.Text.Json;
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
        foreach (var task in new[] { "pos", "thing", "action" })
        {
            Assert.True(File.Exists(Path.Combine(dir.File("runs"), "adapters", task, "adapter_model.safetensors")), task);
            Assert.True(File.Exists(Path.Combine(dir.File("runs"), task, "loss.png")), task);
        }
        using var summary = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir.File("runs"), "summary.json")));
        Assert.Equal(summary.RootElement.GetProperty("base_checksum_before").GetString(), summary.RootElement.GetProperty("base_checksum_after").GetString());
        Assert.Equal(3, summary.RootElement.GetProperty("tasks").GetArrayLength());
        Assert.True(File.Exists(Path.Combine(dir.File("runs"), "data", "LICENSE-WordNet.txt")));
    }
}
