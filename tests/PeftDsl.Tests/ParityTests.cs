using System.Diagnostics;
using PeftDsl.Checkpoints.Safetensors;
using PeftDsl.Cli.Parity;
using PeftDsl.Testing;
using Xunit;

namespace PeftDsl.Tests;

/// <summary>Numerical parity with Hugging Face transformers, through the runner and through the CLI.</summary>
public sealed class ParityTests
{
    [Theory]
    [InlineData("gpt2.base")]
    [InlineData("llama.base")]
    [InlineData("t5.base")]
    [InlineData("mt5.base")]
    [InlineData("gpt2.lora")]
    [InlineData("llama.lora")]
    [InlineData("t5.lora")]
    [InlineData("mt5.lora")]
    [InlineData("gpt2.dora")]
    [InlineData("llama.dora")]
    [InlineData("gpt2.rslora")]
    [InlineData("llama.rslora")]
    [InlineData("gpt2.multi_lora")]
    [InlineData("gpt2.lora_generate")]
    [InlineData("gpt2.prompt")]
    [InlineData("llama.prompt")]
    [InlineData("t5.prompt")]
    [InlineData("mt5.prompt")]
    [InlineData("gpt2.ptuning_mlp")]
    [InlineData("llama.ptuning_mlp")]
    [InlineData("t5.ptuning_mlp")]
    [InlineData("mt5.ptuning_mlp")]
    [InlineData("gpt2.ptuning_lstm")]
    [InlineData("llama.ptuning_lstm")]
    [InlineData("t5.ptuning_lstm")]
    [InlineData("mt5.ptuning_lstm")]
    [InlineData("gpt2.prefix")]
    [InlineData("gpt2.ia3")]
    [InlineData("llama.ia3")]
    [InlineData("t5.ia3")]
    [InlineData("mt5.ia3")]
    public void CasesMatchTransformersAndPeft(string name)
    {
        var result = ParityRunner.Run(Fixtures.Directory, c => c.Name == name).Single();
        Assert.True(result.Outcome == Outcome.Pass, result.ToString());
        Assert.InRange(result.MaxAbs, 0, Tolerance.OutputAbs);
    }

    /// <summary>Nothing in the runner or the models knows the shipped fixtures' sizes, ranks, targets or layer
    /// counts: a folder generated with other ones (tests/fixtures/hf-peft-alt/README.md) passes as well.</summary>
    [Fact]
    public void AFixtureFolderWithOtherSizesRanksAndTargetsPasses()
    {
        var results = ParityRunner.Run(Repo.File("tests", "fixtures", "hf-peft-alt")).ToList();
        Assert.Equal(14, results.Count);
        Assert.All(results, r => Assert.True(r.Outcome == Outcome.Pass, r.ToString()));
    }

    /// <summary>The same for prompt learning: other virtual token counts, encoder widths and a projected GPT-2 prefix
    /// (tests/fixtures/hf-peft-alt-prompt/README.md).</summary>
    [Fact]
    public void APromptFixtureFolderWithOtherSizesAndTokenCountsPasses()
    {
        var results = ParityRunner.Run(Repo.File("tests", "fixtures", "hf-peft-alt-prompt")).ToList();
        Assert.Equal(17, results.Count);
        Assert.All(results, r => Assert.True(r.Outcome == Outcome.Pass, r.ToString()));
    }

    /// <summary>tests/fixtures/hf-arch (README there): GPT-NeoX with a parallel and a sequential residual, Mistral's
    /// sliding window (base, LoRA, prompt tuning and cached generation past the window), Llama 3's rope scaling, and
    /// peft's prefix on T5/mT5.</summary>
    [Fact]
    public void ArchitectureCasesMatchTransformersAndPeft()
    {
        var results = ParityRunner.Run(Repo.File("tests", "fixtures", "hf-arch")).ToList();
        Assert.Equal(15, results.Count);
        Assert.All(results, r => Assert.True(r.Outcome == Outcome.Pass, r.ToString()));
    }

    /// <summary>What transformers computed for Mistral's window (the probe in hf-arch): changing token 0 moves
    /// positions 0–6 only, and our logits for the changed input equal transformers'.</summary>
    [Fact]
    public void TheSlidingWindowMasksWhatTransformersMasks()
    {
        var dir = Repo.File("tests", "fixtures", "hf-arch");
        using var model = PeftDsl.Models.Mistral.MistralForCausalLM.FromPretrained(Path.Combine(dir, "mistral-base"));
        model.eval();
        using var scope = TorchSharp.torch.NewDisposeScope();
        using var noGrad = TorchSharp.torch.no_grad();
        var probe = Fixtures.ReadAll(Path.Combine(dir, "mistral.base.probe.safetensors"));
        var logits = model.Logits(probe["changed_input_ids"].narrow(0, 0, 1))[0];
        Assert.True(logits.allclose(probe["changed_logits_row0"], rtol: 0, atol: Tolerance.OutputAbs));
        var moved = probe["moved"];
        Assert.True(moved.narrow(0, 7, 5).eq(0).all().item<bool>() && moved.narrow(0, 0, 7).gt(0).all().item<bool>());
    }

    [Fact]
    public void UnsupportedCasesAreSkippedWithAReason()
    {
        // Every shipped case is supported now: a method peft has and PeftDsl lacks stands in.
        using var dir = WithUnsupportedMethod();
        var results = ParityRunner.Run(dir.Path, c => c.Name is "gpt2.ia3").ToList();
        Assert.Equal(Outcome.Skip, Assert.Single(results).Outcome);
        Assert.Equal("SKIP gpt2.ia3 (LOHA adapters are not supported yet)", results[0].ToString());
    }

    /// <summary>The runner must be able to fail: a reference with one perturbed gradient fails that case.</summary>
    [Fact]
    public void PerturbedReferenceFails()
    {
        using var dir = CopyFixtures("gpt2");
        var path = dir.File("gpt2.base.expected.safetensors");
        var tensors = Fixtures.ReadAll(path);
        tensors["grad::transformer.h.1.mlp.c_fc.weight"] = tensors["grad::transformer.h.1.mlp.c_fc.weight"] + 1e-2f;
        SafetensorsWriter.Save(path, tensors);

        var result = ParityRunner.Run(dir.Path, c => c.Name == "gpt2.base").Single();
        Assert.Equal(Outcome.Fail, result.Outcome);
        Assert.Contains("gradient of transformer.h.1.mlp.c_fc.weight differs", result.Detail);
    }

    /// <summary>Prompt cases compare the encoder's gradients and the saved rows: perturbing either fails the case.</summary>
    [Theory]
    [InlineData("grad::prompt_encoder.default.mlp_head.0.weight", "gradient of prompt_encoder.default.mlp_head.0.weight differs")]
    [InlineData("param::prompt_encoder.default.mlp_head.4.bias", "the task's rows differ from the saved prompt_embeddings")]
    public void PerturbedPromptReferenceFails(string key, string message)
    {
        using var dir = CopyFixtures("gpt2");
        var path = dir.File("gpt2.ptuning_mlp.expected.safetensors");
        var tensors = Fixtures.ReadAll(path);
        tensors[key] = tensors[key] + 1e-2f;
        SafetensorsWriter.Save(path, tensors);

        var result = ParityRunner.Run(dir.Path, c => c.Name == "gpt2.ptuning_mlp").Single();
        Assert.Equal(Outcome.Fail, result.Outcome);
        Assert.Contains(message, result.Detail);
    }

    /// <summary>Generation is compared at full length: a reference with more tokens than we produce fails (it used to
    /// pass on our shorter prefix), and a row we stop early on a stop token matches only a reference padded after it.</summary>
    [Fact]
    public void GenerationIsComparedAtFullLength()
    {
        using var dir = CopyFixtures("gpt2");
        var path = dir.File("gpt2.lora_generate.expected.safetensors");
        var tensors = Fixtures.ReadAll(path);
        var prompt = tensors["prompt"].shape[1];
        var generated = tensors["generated"];

        var longer = Fixtures.ReadAll(path);
        longer["generated"] = TorchSharp.torch.cat([generated, generated.narrow(1, prompt, 2)], 1);
        SafetensorsWriter.Save(path, longer);
        var result = ParityRunner.Run(dir.Path, c => c.Name == "gpt2.lora_generate").Single();
        Assert.Equal(Outcome.Fail, result.Outcome);
        Assert.Contains("tokens), reference [", result.Detail);

        // Stop on row 0's third new token: each row ends at its first such token, then transformers pads with 0.
        var stop = generated[0, prompt + 2].item<long>();
        var config = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(dir.File("gpt2-base/generation_config.json")))!.AsObject();
        config["eos_token_id"] = stop;
        config["pad_token_id"] = 0;
        File.WriteAllText(dir.File("gpt2-base/generation_config.json"), config.ToJsonString());
        var padded = generated.clone();
        for (var row = 0; row < padded.shape[0]; row++)
            for (long col = prompt, stopped = 0; col < padded.shape[1]; col++)
            {
                if (stopped == 1) padded[row, col] = 0;
                else if (padded[row, col].item<long>() == stop) stopped = 1;
            }
        tensors["generated"] = padded;
        SafetensorsWriter.Save(path, tensors);
        result = ParityRunner.Run(dir.Path, c => c.Name == "gpt2.lora_generate").Single();
        Assert.True(result.Outcome == Outcome.Pass, result.ToString());

        padded[0, -1] = 7;   // not padding after the stop
        SafetensorsWriter.Save(path, tensors);
        Assert.Equal(Outcome.Fail, ParityRunner.Run(dir.Path, c => c.Name == "gpt2.lora_generate").Single().Outcome);
    }

    [Fact]
    public void CliPrintsOneLinePerCaseAndTotals()
    {
        using var dir = WithUnsupportedMethod();
        var (code, stdout, _) = Peft("parity", dir.Path, "--case", "gpt2.base", "--case", "gpt2.ia3");
        var lines = stdout.Trim().Split('\n');
        Assert.Equal(0, code);
        Assert.Matches(@"^PASS gpt2\.base max_abs=\d\.\d\de[-+]\d\d$", lines[0]);
        Assert.Equal("SKIP gpt2.ia3 (LOHA adapters are not supported yet)", lines[1]);
        Assert.Equal("1 passed, 0 failed, 1 skipped", lines[^1]);
    }

    [Fact]
    public void CliExitsNonZeroWhenACaseFails()
    {
        using var dir = CopyFixtures("gpt2");
        var path = dir.File("gpt2.base.expected.safetensors");
        var tensors = Fixtures.ReadAll(path);
        tensors["loss"] = tensors["loss"] + 1f;
        SafetensorsWriter.Save(path, tensors);

        var (code, stdout, _) = Peft("parity", dir.Path, "--case", "gpt2.base");
        Assert.Equal(1, code);
        Assert.Contains("FAIL gpt2.base", stdout);
        Assert.Contains("0 passed, 1 failed, 0 skipped", stdout);
    }

    /// <summary>A perturbed merged reference fails: the merged path is really compared.</summary>
    [Fact]
    public void PerturbedMergedLogitsFail()
    {
        using var dir = CopyFixtures("llama");
        var path = dir.File("llama.lora.merged.safetensors");
        var tensors = Fixtures.ReadAll(path);
        tensors["merged_logits"] = tensors["merged_logits"] + 1e-3f;
        SafetensorsWriter.Save(path, tensors);

        var result = ParityRunner.Run(dir.Path, c => c.Name == "llama.lora").Single();
        Assert.Equal(Outcome.Fail, result.Outcome);
        Assert.Contains("merged logits differ", result.Detail);
    }

    /// <summary>A mixed batch whose third row names adapter a instead of the base model no longer matches.</summary>
    [Fact]
    public void MixedBatchRoutingIsChecked()
    {
        using var dir = CopyFixtures("gpt2");
        var manifest = File.ReadAllText(dir.File("manifest.json")).Replace("\"__base__\"", "\"a\"");
        File.WriteAllText(dir.File("manifest.json"), manifest);

        var result = ParityRunner.Run(dir.Path, c => c.Name == "gpt2.multi_lora").Single();
        Assert.Equal(Outcome.Fail, result.Outcome);
        Assert.Contains("mixed-batch logits differ", result.Detail);
    }

    [Fact]
    public void CliRefusesACaseNameThatMatchesNothing()
    {
        var (code, stdout, stderr) = Peft("parity", Fixtures.Directory, "--case", "gpt2.lora", "--case", "gpt2.lroa");
        Assert.Equal(2, code);
        Assert.Empty(stdout);
        Assert.StartsWith("error: --case 'gpt2.lroa' matches no case", stderr);
        Assert.Contains("gpt2.lora", stderr);
    }

    [Fact]
    public void CliReportsAFolderWithoutManifestAsBadInput()
    {
        using var dir = new TempDir();
        var (code, stdout, stderr) = Peft("parity", dir.Path);
        Assert.Equal(2, code);
        Assert.Empty(stdout);
        Assert.StartsWith("error: ", stderr);
        Assert.Contains("no manifest.json", stderr);
        Assert.DoesNotContain("   at ", stderr);
    }

    /// <summary>A fixture folder with only one family's files, so a test can rewrite them.</summary>
    /// <summary>The GPT-2 fixtures with gpt2.ia3's adapter relabelled as LoHa, a peft method PeftDsl does not have.</summary>
    private static TempDir WithUnsupportedMethod()
    {
        var dir = CopyFixtures("gpt2");
        var config = dir.File("gpt2.ia3/adapter_config.json");
        File.WriteAllText(config, File.ReadAllText(config).Replace("\"IA3\"", "\"LOHA\""));
        return dir;
    }

    private static TempDir CopyFixtures(string family)
    {
        var dir = new TempDir();
        foreach (var file in Directory.GetFiles(Fixtures.Directory, family + ".*"))
            File.Copy(file, dir.File(Path.GetFileName(file)));
        Directory.CreateDirectory(dir.File(family + "-base"));
        foreach (var file in Directory.GetFiles(Fixtures.Base(family)))
            File.Copy(file, Path.Combine(dir.File(family + "-base"), Path.GetFileName(file)));
        foreach (var sub in Directory.GetDirectories(Fixtures.Directory, family + ".*"))
            CopyTree(sub, dir.File(Path.GetFileName(sub)));
        File.Copy(Path.Combine(Fixtures.Directory, "manifest.json"), dir.File("manifest.json"));
        return dir;
    }

    private static void CopyTree(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var f in Directory.GetFiles(from)) File.Copy(f, Path.Combine(to, Path.GetFileName(f)));
        foreach (var d in Directory.GetDirectories(from)) CopyTree(d, Path.Combine(to, Path.GetFileName(d)));
    }

    /// <summary>Runs the built CLI as a separate process, as a user would.</summary>
    internal static (int Code, string Stdout, string Stderr) Peft(params string[] args) => PeftWith([], args);

    /// <summary>Runs the built CLI with extra environment variables.</summary>
    internal static (int Code, string Stdout, string Stderr) PeftWith((string Name, string Value)[] environment, params string[] args)
    {
        var dll = Path.Combine(AppContext.BaseDirectory, "peft.dll");
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add(dll);
        foreach (var a in args) start.ArgumentList.Add(a);
        foreach (var (name, value) in environment) start.Environment[name] = value;
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        process.WaitForExit();
        return (process.ExitCode, stdout.Result, stderr.Result);
    }
}
