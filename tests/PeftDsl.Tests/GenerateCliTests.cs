using PeftDsl.Generation;
using PeftDsl.Models.Llama;
using PeftDsl.Models.T5;
using PeftDsl.Testing;
using PeftDsl.Tokenization;
using Xunit;

namespace PeftDsl.Tests;

/// <summary><c>peft generate</c> as a user runs it, compared with the library.</summary>
public sealed class GenerateCliTests
{
    [Fact]
    public void PromptIdsGiveTheLibrarysTokens()
    {
        var (code, stdout, stderr) = ParityTests.Peft("generate", "--model", Fixtures.Base("t5"),
            "--prompt-ids", "5 17 301", "--prompt-ids", "42 7", "--max-new-tokens", "6", "--ids");
        Assert.True(code == 0, stderr);

        using var model = T5ForConditionalGeneration.FromPretrained(Fixtures.Base("t5"));
        var options = GenerationDefaults.FromFolder(Fixtures.Base("t5")).ApplyTo(new GenerationOptions { MaxNewTokens = 6 }, padGiven: false);
        var expected = TextGenerator.Generate(model, [[5, 17, 301], [42, 7]], options);
        Assert.Equal(expected.Select(t => string.Join(" ", t)), stdout.Trim().Split('\n'));
    }

    [Fact]
    public void TextPromptsGoThroughTheFoldersTokenizer()
    {
        using var dir = new TempDir();
        Fixtures.CopyBase("llama", dir);
        File.Copy(Repo.File("tests", "fixtures", "tokenizers", "llama-bpe.model"), dir.File("tokenizer.model"));
        var (code, stdout, stderr) = ParityTests.Peft("generate", "--model", dir.Path, "--prompt", "Hello world", "--max-new-tokens", "5");
        Assert.True(code == 0, stderr);

        using var model = LlamaForCausalLM.FromPretrained(dir.Path);
        var tokenizer = TokenizerLoader.FromFolder(dir.Path, "llama", model.VocabSize);
        // The tokenizer has fewer ids than the model: only ids it can decode are generated, and stderr says so.
        Assert.Contains("only ids the tokenizer can decode are generated", stderr);
        var options = GenerationDefaults.FromFolder(dir.Path).ApplyTo(new GenerationOptions { MaxNewTokens = 5, VocabLimit = tokenizer.VocabSize }, padGiven: false);
        var tokens = TextGenerator.Generate(model, [tokenizer.Encode("Hello world")], options)[0];
        Assert.Equal(tokenizer.Decode(tokens), stdout.TrimEnd('\n'));
    }

    [Theory]
    [InlineData("--top-p", "0", "generation: top-p must be in (0, 1], got 0")]
    [InlineData("--max-new-tokens", "-3", "generation: max new tokens must be 0 or more, got -3")]
    [InlineData("--temperature", "-1", "generation: temperature must be a positive number, got -1")]
    [InlineData("--stop", "99999", "--stop 99999: outside the model's vocabulary of 512, so it could never stop a run")]
    [InlineData("--max-new-tokens", "63", "--prompt and --max-new-tokens 63: generation: the longest prompt (2 tokens) plus 63 new tokens exceed the model's 64 positions")]
    public void BadArgumentsAreOneErrorLine(string option, string value, string message)
    {
        var (code, _, stderr) = ParityTests.Peft("generate", "--model", Fixtures.Base("gpt2"), "--prompt-ids", "1 2", "--ids", option, value);
        Assert.Equal(2, code);
        Assert.Equal("error: " + message, stderr.Trim());
    }

    /// <summary>A rotary model is not taken past its max_position_embeddings without --ignore-max-positions.</summary>
    [Fact]
    public void GeneratingPastARotaryModelsPositionsNeedsTheFlag()
    {
        string[] args = ["generate", "--model", Fixtures.Base("llama"), "--prompt-ids", "1 2", "--ids", "--max-new-tokens", "63"];
        var (code, stdout, stderr) = ParityTests.Peft(args);
        Assert.Equal(2, code);
        Assert.Empty(stdout);
        var line = Assert.Single(stderr.TrimEnd().Split('\n'));
        Assert.StartsWith("error: --prompt and --max-new-tokens 63: generation: the longest prompt (2 tokens) plus 63 new tokens exceed the 64 positions the model was trained for", line);
        Assert.EndsWith("pass --ignore-max-positions (IgnoreMaxPositions) to go on anyway", line);
        (code, stdout, stderr) = ParityTests.Peft([.. args, "--ignore-max-positions"]);
        Assert.True(code == 0, stderr);
        Assert.Equal(63, stdout.Trim().Split(' ').Length);
    }

    [Fact]
    public void TextPromptWithoutATokenizerSaysWhatIsMissing()
    {
        var (code, _, stderr) = ParityTests.Peft("generate", "--model", Fixtures.Base("gpt2"), "--prompt", "Hello");
        Assert.Equal(2, code);
        Assert.Contains("no usable tokenizer", stderr);
    }

    [Theory]
    [InlineData("--device", "cuda", "--device cuda: CUDA is not available here")]
    [InlineData("--device", "tpu", "--device: 'tpu' is not a device")]
    [InlineData("--dtype", "int8", "--dtype: 'int8' is not one of fp32, bf16, fp16")]
    public void BadPlacementIsAnError(string option, string value, string message)
    {
        var (code, _, stderr) = ParityTests.Peft("generate", "--model", Fixtures.Base("gpt2"), "--prompt-ids", "1 2", "--ids", option, value);
        Assert.Equal(2, code);
        Assert.Contains(message, stderr);
    }

    [Fact]
    public void Bf16GenerationRuns()
    {
        var (code, stdout, stderr) = ParityTests.Peft("generate", "--model", Fixtures.Base("llama"), "--prompt-ids", "5 17 301", "--ids", "--dtype", "bf16", "--max-new-tokens", "4");
        Assert.True(code == 0, stderr);
        Assert.Equal(4, stdout.Trim().Split(' ').Length);
    }

    [Fact]
    public void MissingPromptIsAnError()
    {
        var (code, _, stderr) = ParityTests.Peft("generate", "--model", Fixtures.Base("gpt2"));
        Assert.Equal(2, code);
        Assert.Contains("no prompt", stderr);
    }
}

public sealed class BenchTests
{
    /// <summary>The bench runs end to end and reports each measurement; it asserts no timing.</summary>
    [Fact]
    public void BenchReportsEveryMeasurement()
    {
        var output = new StringWriter();
        Assert.Equal(0, Cli.Commands.BenchCommand.Run("llama-tiny", null, batch: 1, length: 8, steps: 1, newTokens: 2, output));
        var text = output.ToString();
        Assert.Contains("model llama-tiny: 4.9M parameters, Float32 on cpu, batch 1 x 8 tokens", text);
        foreach (var line in new[] { "forward ", "training step", "generate (cache)", "generate (no cache)" })
            Assert.Contains(line, text);
    }

    /// <summary>The LoRA step and the JSON contract later checks read.</summary>
    [Fact]
    public void BenchWritesItsJsonForALoraStep()
    {
        using var dir = new TempDir();
        var output = new StringWriter();
        var lora = new Cli.Commands.BenchCommand.PeftBench("lora", 4, ["all"], 2, true, 0);
        Assert.Equal(0, Cli.Commands.BenchCommand.Run("gpt2-tiny", null, batch: 2, length: 8, steps: 1, newTokens: 0, output, peft: lora, jsonPath: dir.File("b.json")));
        Assert.Contains("lora: 2 adapter(s), r=4 on all", output.ToString());
        Assert.Contains("AdamW on the trainable flat buffer", output.ToString());
        using var json = System.Text.Json.JsonDocument.Parse(File.ReadAllText(dir.File("b.json")));
        foreach (var key in new[] { "shape", "method", "device", "dtype", "batch", "length", "forward_ms", "train_step_ms", "tokens_per_s", "peak_bytes" })
            Assert.True(json.RootElement.TryGetProperty(key, out _), key);
        Assert.Equal("lora", json.RootElement.GetProperty("method").GetString());
        Assert.True(json.RootElement.GetProperty("train_step_ms").GetDouble() > 0);
    }

    /// <summary>Each other method's PEFT step runs, with exactly its own parameters trainable (gpt2-tiny: width 256,
    /// 4 layers, 4 heads, MLP 1024): the counts peft gives the same configs.</summary>
    [Theory]
    [InlineData("dora", "271,360")]      // per layer: LoRA r=16 on c_attn, attn.c_proj, c_fc, mlp.c_proj (65,536) + their magnitudes (2,304)
    [InlineData("ia3", "7,168")]         // c_attn's 768 outputs and mlp.c_proj's 1,024 inputs, per layer
    [InlineData("prompt", "5,120")]      // 20 rows of 256
    [InlineData("ptuning", "202,496")]   // the 20 × 256 embedding and peft's MLP: three 256 × 256 linears with biases
    [InlineData("prefix", "40,960")]     // 20 rows of a key and a value (256 each) for 4 layers
    public void BenchRunsEachMethodsStep(string method, string trainable)
    {
        using var dir = new TempDir();
        var output = new StringWriter();
        var peft = Cli.Commands.BenchCommand.PeftBench.From(method, null, null, 1, false, 20);
        Assert.Equal(0, Cli.Commands.BenchCommand.Run("gpt2-tiny", null, batch: 2, length: 8, steps: 1, newTokens: 2, output, peft: peft, jsonPath: dir.File("b.json")));
        Assert.Contains($"{method}: ", output.ToString());
        Assert.Contains($" {trainable} trainable parameters", output.ToString());
        using var json = System.Text.Json.JsonDocument.Parse(File.ReadAllText(dir.File("b.json")));
        Assert.Equal(method, json.RootElement.GetProperty("method").GetString());
    }

    [Theory]
    [InlineData("adapter", null, null, 1, false, 20, "--method: 'adapter' is not one of none, lora, dora, ia3, prompt, ptuning, prefix")]
    [InlineData("ia3", 8, null, 1, false, 20, "--lora-r and --lora-targets are for --method lora or dora, not ia3")]
    [InlineData("prompt", null, null, 2, false, 20, "--adapters and --mixed are for --method lora or dora, not prompt")]
    [InlineData("none", null, null, 1, true, 20, "--adapters and --mixed are for --method lora or dora, not none")]
    [InlineData("prefix", null, null, 1, false, 0, "--virtual-tokens must be positive, got 0")]
    public void BadMethodOptionsAreOneLine(string method, int? rank, string? target, int adapters, bool mixed, int tokens, string message)
    {
        var e = Assert.Throws<Errors.PeftDslException>(() => Cli.Commands.BenchCommand.PeftBench.From(method, rank,
            target is null ? null : [target], adapters, mixed, tokens));
        Assert.Equal(message, e.Message);
    }

    /// <summary>Prompt tuning's virtual tokens count against the model's positions.</summary>
    [Fact]
    public void VirtualTokensCountAgainstThePositions()
    {
        var peft = Cli.Commands.BenchCommand.PeftBench.From("prompt", null, null, 1, false, 20);
        var e = Assert.Throws<Errors.PeftDslException>(() => Cli.Commands.BenchCommand.Run("gpt2-tiny", null, 1, 500, 1, 0, TextWriter.Null, peft: peft));
        Assert.Equal("bench: --length 500 plus --new-tokens 0 plus --virtual-tokens 20 exceed the model's 512 positions", e.Message);
    }

    [Fact]
    public void UnknownShapeIsAnError()
    {
        var e = Assert.Throws<Errors.PeftDslException>(() => Cli.Commands.BenchCommand.Run("gpt5", null, 1, 8, 1, 0, TextWriter.Null));
        Assert.Contains("unknown shape 'gpt5'", e.Message);
    }

    /// <summary>Peak GPU memory comes from NVML. Where NVML's library does not load (checked here on its own: CI, the
    /// development machines) the sampler is absent, not an exception, and a CPU bench reports its peak as null; where it
    /// loads, a sampler reads a non-negative peak.</summary>
    [Fact]
    public void TheGpuMemorySamplerIsAbsentWithoutNvmlAndACpuBenchReportsItsResidentPeak()
    {
        var nvml = System.Runtime.InteropServices.NativeLibrary.TryLoad("libnvidia-ml.so.1", out var handle);
        if (nvml) System.Runtime.InteropServices.NativeLibrary.Free(handle);
        using var sampler = Cli.Bench.GpuMemorySampler.Start(0);
        if (!nvml) Assert.Null(sampler);
        if (sampler is not null) Assert.True(sampler.PeakBytes >= 0);   // a driver with no device gives none, too

        using var dir = new TempDir();
        var (code, stdout, stderr) = ParityTests.Peft("bench", "--shape", "gpt2-tiny", "--batch", "1", "--length", "8", "--steps", "1", "--new-tokens", "0",
            "--json", dir.File("bench.json"));
        Assert.True(code == 0, stderr);
        var json = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(dir.File("bench.json")))!;
        // On the CPU the peak is the process's resident high-water mark over the timed steps (Linux's VmHWM).
        if (OperatingSystem.IsLinux())
        {
            Assert.True(json["peak_bytes"]!.GetValue<long>() > 50L << 20);
            Assert.StartsWith("vmhwm", json["peak_bytes_source"]!.GetValue<string>());
            Assert.Contains("peak resident", stdout);
        }
        Assert.DoesNotContain("peak GPU memory", stdout);
    }

    /// <summary>Sizes no run can use are one error line before anything is allocated (they used to end in native
    /// allocator frames or a hang).</summary>
    [Theory]
    [InlineData("--length", "100000", "error: bench: --length 100000 plus --new-tokens 32 exceed the model's 512 positions")]
    [InlineData("--batch", "100000000", "error: bench: --batch 100000000 × --length 128 × hidden size 256 needs 12207.0 GiB for one layer's fp32 hidden states alone; this machine has")]
    [InlineData("--plain-loss --batch", "100000000", "error: bench: --batch 100000000 × --length 128 × vocabulary 4096 needs 195312.5 GiB for the fp32 logits alone; this machine has")]
    public void AbsurdBenchSizesAreOneErrorLine(string option, string value, string message)
    {
        var (code, _, stderr) = ParityTests.Peft(["bench", "--shape", "gpt2-tiny", .. option.Split(' '), value]);
        Assert.Equal(2, code);
        Assert.StartsWith(message, Assert.Single(stderr.Trim().Split('\n')));
    }
}
