using System.Text.Json;
using PeftDsl.Tests.Training;
using Xunit;

namespace PeftDsl.Tests.Quantization;

/// <summary>The 4-bit base from the command line: QLoRA training, the bench path of the 8B proof at a tiny size, and
/// the one-line refusals.</summary>
public sealed class FourBitCliTests
{
    [Fact]
    public void TrainingLoraOnAFourBitBaseWithCheckpointingSavesAPeftAdapter()
    {
        using var dir = TrainCliTests.Workspace();
        var (code, stdout, stderr) = ParityTests.Peft(
        [
            "train", "--model", Fixtures.Base("llama"), "--tokenizer", dir.File("tok"), "--data", dir.File("train.jsonl"), "--out", dir.File("q"),
            "--batch", "4", "--lr", "5e-3", "--log-every", "1", "--steps", "3", "--quantize", "nf4", "--double-quant", "--gradient-checkpointing",
        ]);
        Assert.True(code == 0, stderr);
        var losses = File.ReadAllLines(dir.File("q/metrics.jsonl")).Select(l => JsonDocument.Parse(l).RootElement)
            .Where(e => e.TryGetProperty("loss", out _)).Select(e => e.GetProperty("loss").GetDouble()).ToArray();
        Assert.Equal(3, losses.Length);
        Assert.All(losses, l => Assert.True(double.IsFinite(l)));
        // peft's adapter format: it loads on the full-precision base as on a 4-bit one, and training moved lora_B off
        // its zero initialisation.
        using var model = Models.Llama.LlamaForCausalLM.FromPretrained(Fixtures.Base("llama"));
        model.Adapters.Load(dir.File("q"), "q");
        Assert.Contains("q", model.Adapters.Names);
        Assert.Contains(model.Adapters.Linears(), l => l.Linear.Lora.Adapters.Contains("q") && l.Linear.Lora.B("q").abs().sum().item<float>() > 0);
        Assert.Contains("finished after 3 steps", stdout);
    }

    [Fact]
    public void TheBenchRunsTheQuantizedCheckpointedLoraStep()
    {
        using var dir = new TempDir();
        var (code, stdout, stderr) = ParityTests.Peft(
        [
            "bench", "--shape", "llama-tiny", "--quantize", "nf4", "--double-quant", "--dtype", "bf16", "--method", "lora", "--lora-r", "16",
            "--lora-targets", "all", "--gradient-checkpointing", "--batch", "1", "--length", "32", "--steps", "1", "--new-tokens", "0",
            "--json", dir.File("b.json"),
        ]);
        Assert.True(code == 0, stderr);
        Assert.Contains("nf4 (double quant) projections", stdout);
        var json = JsonDocument.Parse(File.ReadAllText(dir.File("b.json"))).RootElement;
        Assert.Equal("nf4+double", json.GetProperty("quantize").GetString());
        Assert.True(json.GetProperty("gradient_checkpointing").GetBoolean());
        Assert.True(json.GetProperty("train_step_ms").GetDouble() > 0);
    }

    [Theory]
    [InlineData("refuse-8b")]
    [InlineData("bad-quantize")]
    [InlineData("double-alone")]
    public void BadQuantizationInputIsOneLine(string which)
    {
        string[] args = which switch
        {
            // 8B parameters in fp32 need about 30 GiB: refused before anything is written, with the estimate.
            "refuse-8b" => ["bench", "--shape", "llama3-8b", "--method", "lora", "--batch", "1", "--length", "128", "--steps", "1"],
            "bad-quantize" => ["bench", "--shape", "llama-tiny", "--quantize", "int8"],
            _ => ["bench", "--shape", "llama-tiny", "--double-quant"],
        };
        // The memory the process may use is held at 8 GiB (the GC's hard limit, which .NET reports as available memory),
        // so the refusal does not depend on the machine the test runs on.
        var (code, _, stderr) = ParityTests.PeftWith([("DOTNET_GCHeapHardLimit", "0x200000000")], args);
        Assert.Equal(2, code);
        Assert.Single(stderr.Trim().Split('\n'));
        Assert.Contains(which switch
        {
            "refuse-8b" => "the weights alone need about 29.9 GiB, but only 8.0 GiB of memory is available to this process",
            "bad-quantize" => "--quantize: 'int8' is not one of nf4, fp4, none",
            _ => "--double-quant quantizes the 4-bit scales",
        }, stderr);
    }
}
