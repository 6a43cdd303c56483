using PeftDsl.Generation;
using PeftDsl.Models.Gpt2;
using PeftDsl.Models.T5;
using Xunit;
using static TorchSharp.torch;

namespace PeftDsl.Tests.Lora;

/// <summary><c>peft inspect</c>, <c>peft merge</c> and <c>peft generate --adapter</c> as a user runs them.</summary>
public sealed class LoraCliTests
{
    private static string Case(string name) => Path.Combine(Fixtures.Directory, name);

    [Fact]
    public void InspectPrintsTheTrainableTableAndPeftsSummaryLine()
    {
        var (code, stdout, stderr) = ParityTests.Peft("inspect", "--model", Fixtures.Base("gpt2"), "--adapter", Case("gpt2.lora"));
        Assert.True(code == 0, stderr);
        var lines = stdout.TrimEnd().Split('\n');
        Assert.Contains("adapter: default (LoRA r=4, alpha=8, active)", lines);
        // c_attn: A [4, 32] + B [96, 4] per layer, two layers.
        Assert.Contains(lines, l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries) is ["attention_qkv", "transformer.h.*.attn.c_attn", "0-1", "default", "1,024"]);
        using var model = Gpt2LMHeadModel.FromPretrained(Fixtures.Base("gpt2"));
        var baseCount = model.parameters().Sum(p => p.NumberOfElements);
        model.Adapters.Load(Case("gpt2.lora"));
        var lora = model.parameters().Sum(p => p.NumberOfElements) - baseCount;
        Assert.Equal($"trainable params: {lora:N0} || all params: {baseCount + lora:N0} || trainable%: {100.0 * lora / (baseCount + lora):F4}",
            lines[^1], ignoreCase: false);
    }

    [Fact]
    public void InspectWithoutAnAdapterListsTheSitesAndPreviewsTargets()
    {
        var (code, stdout, _) = ParityTests.Peft("inspect", "--model", Fixtures.Base("t5"));
        Assert.Equal(0, code);
        Assert.Contains("attention_kv", stdout);
        Assert.Contains("decoder.block.*.layer.1.EncDecAttention.k", stdout);
        Assert.EndsWith("trainable%: 0.0000", stdout.TrimEnd());

        (code, stdout, _) = ParityTests.Peft("inspect", "--model", Fixtures.Base("t5"), "--targets", "mlp", "--r", "2");
        Assert.Equal(0, code);
        Assert.Contains("adapter: default (LoRA r=2, alpha=2, active)", stdout);
        Assert.Contains("mlp_fc2", stdout);
        Assert.DoesNotContain("attention_qkv", stdout);
    }

    /// <summary>The merged folder is a plain Hugging Face model whose logits are the adapted model's.</summary>
    [Fact]
    public void MergeWritesAPlainModelThatComputesTheAdaptedFunction()
    {
        using var dir = new TempDir();
        var output = dir.File("merged");
        var (code, stdout, stderr) = ParityTests.Peft("merge", "--model", Fixtures.Base("mt5"), "--adapter", Case("mt5.lora"), "--out", output);
        Assert.True(code == 0, stderr);
        Assert.Contains("wrote the merged model (base + default)", stdout);
        Assert.Equal(["config.json", "generation_config.json", "model.safetensors", "peftdsl_merge.json"], Directory.GetFiles(output).Select(Path.GetFileName).Order());

        using var merged = T5ForConditionalGeneration.FromPretrained(output);
        using var adapted = T5ForConditionalGeneration.FromPretrained(Fixtures.Base("mt5"));
        adapted.Adapters.Load(Case("mt5.lora"));
        using var scope = NewDisposeScope();
        var (ids, mask) = LoraMathTests.Batch(rows: 2);
        var decoder = ids.narrow(1, 0, 4);
        merged.eval();
        adapted.eval();
        LoraMathTests.AssertClose(merged.Forward(ids, mask, decoder).Logits, adapted.Forward(ids, mask, decoder).Logits, 1e-4);
    }

    [Fact]
    public void GenerateWithAnAdapterGivesTheLibrarysTokens()
    {
        var (code, stdout, stderr) = ParityTests.Peft("generate", "--model", Fixtures.Base("gpt2"), "--adapter", Case("gpt2.multi_lora"),
            "--use", "b", "--prompt-ids", "5 17 301", "--max-new-tokens", "6", "--ids");
        Assert.True(code == 0, stderr);
        using var model = Gpt2LMHeadModel.FromPretrained(Fixtures.Base("gpt2"));
        model.Adapters.Load(Path.Combine(Case("gpt2.multi_lora"), "b"), "b");
        var options = GenerationDefaults.FromFolder(Fixtures.Base("gpt2")).ApplyTo(new GenerationOptions { MaxNewTokens = 6 }, padGiven: false);
        Assert.Equal(string.Join(" ", TextGenerator.Generate(model, [[5, 17, 301]], options)[0]), stdout.Trim());
    }

    [Theory]
    [InlineData("inspect", "--adapter", "gpt2.multi_lora", "holds several adapters (a, b): choose with --use NAME")]
    [InlineData("inspect", "--adapter", "llama.lora", "match no linear module of the model")]
    [InlineData("merge", "--adapter", "gpt2.prompt", "prompt-learning adapters (default) put virtual tokens before the input; they cannot be merged into the weights")]
    [InlineData("inspect", "--adapter", "no-such-folder", "adapter folder not found")]
    [InlineData("generate", "--use", "a", "--use needs --adapter")]
    [InlineData("merge", "--use", "a", "--adapter is required")]
    public void BadAdapterArgumentsAreOneErrorLine(string command, string option, string value, string message)
    {
        var args = new List<string> { command, "--model", Fixtures.Base("gpt2"), option, option == "--adapter" ? Case(value) : value };
        if (command == "generate") args.AddRange(["--prompt-ids", "1 2", "--ids"]);
        if (command == "merge") args.AddRange(["--out", Path.Combine(Path.GetTempPath(), "peftdsl-never-written")]);
        var (code, stdout, stderr) = ParityTests.Peft(args.ToArray());
        Assert.Equal(2, code);
        Assert.StartsWith("error: ", stderr);
        Assert.Contains(message, stderr);
        Assert.DoesNotContain("   at ", stderr);
        Assert.False(Directory.Exists(Path.Combine(Path.GetTempPath(), "peftdsl-never-written")));
    }

    [Fact]
    public void MergeRefusesToOverwriteTheBaseFolderAndUnknownAdapterNames()
    {
        var (code, _, stderr) = ParityTests.Peft("merge", "--model", Fixtures.Base("gpt2"), "--adapter", Case("gpt2.lora"), "--out", Fixtures.Base("gpt2"));
        Assert.Equal(2, code);
        Assert.Contains("is or contains the base model folder", stderr);
        using var dir = new TempDir();
        (code, _, stderr) = ParityTests.Peft("merge", "--model", Fixtures.Base("gpt2"), "--adapter", Case("gpt2.multi_lora"), "--use", "c", "--out", dir.File("m"));
        Assert.Equal(2, code);
        Assert.Contains("--use c: ", stderr);
        Assert.Contains("has no adapter of that name (it has a, b)", stderr);
        Assert.False(Directory.Exists(dir.File("m")));
    }

    [Theory]
    [InlineData(new[] { "inspect", "--frobnicate" }, "error: unknown option '--frobnicate'", "(see 'peft inspect --help')")]
    [InlineData(new[] { "inspect", "--model", "M", "--r", "abc" }, "error: --r: 'abc' is not a whole number", "(see 'peft inspect --help')")]
    [InlineData(new[] { "inspect", "--model", "M", "--r", "4" }, "error: --r and --dora describe a previewed LoRA adapter: give --method lora or --targets too", "")]
    [InlineData(new[] { "inspect", "--model", "M", "--shape", "gpt2-tiny" }, "error: give either --model DIR or --shape NAME", "")]
    [InlineData(new[] { "inspect", "--model", "M", "--targets", "c_attn", "--r", "0" }, "error: --r must be a positive rank, got 0", "")]
    [InlineData(new[] { "parity", "/no/such/folder" }, "error: /no/such/folder: fixture folder not found", "")]
    [InlineData(new[] { "generate", "--model", "M", "--prompt-ids", "1 2" }, "no usable tokenizer", "to print token ids instead of text, add --ids")]
    [InlineData(new string[0], "error: a command is required: demo, train, eval,", "(see 'peft --help')")]
    [InlineData(new[] { "trian" }, "error: unknown command 'trian' (did you mean train?)", "(see 'peft --help')")]
    [InlineData(new[] { "train", "--data", "d.jsonl" }, "error: --model and --out are required", "(see 'peft train --help')")]
    public void UsageMistakesAreOneErrorLineWithExitCode2(string[] args, string start, string end)
    {
        var (code, stdout, stderr) = ParityTests.Peft(args.Select(a => a == "M" ? Fixtures.Base("gpt2") : a).ToArray());
        Assert.Equal(2, code);
        Assert.Empty(stdout);
        var line = Assert.Single(stderr.TrimEnd().Split('\n'));
        Assert.Contains(start, line);
        Assert.EndsWith(end, line);
    }

    [Fact]
    public void ACaseTypoSuggestsTheNearestCase()
    {
        var (code, _, stderr) = ParityTests.Peft("parity", Fixtures.Directory, "--case", "gpt2.lroa");
        Assert.Equal(2, code);
        Assert.Contains("did you mean 'gpt2.lora'?", stderr);
    }

    [Fact]
    public void InspectTargetsMayBeCommaSeparated()
    {
        var (code, stdout, stderr) = ParityTests.Peft("inspect", "--model", Fixtures.Base("gpt2"), "--targets", "c_attn,c_fc", "--r", "2");
        Assert.True(code == 0, stderr);
        Assert.Contains("transformer.h.*.attn.c_attn", stdout);
        Assert.Contains("transformer.h.*.mlp.c_fc", stdout);
    }

    /// <summary>An existing --out is never mixed with the merged model and never loses what a merge did not write:
    /// refused unless --overwrite, and --overwrite replaces only a folder an earlier merge wrote (its files, and a file
    /// the new merge does not write, go; anything else, or a model folder without the merge's record, is refused). A
    /// link is refused, since it could lead into the base model's folder.</summary>
    [Fact]
    public void MergeNeverMixesFoldersOrFollowsLinks()
    {
        using var dir = new TempDir();
        var output = dir.File("out");
        Directory.CreateDirectory(output);
        File.WriteAllText(Path.Combine(output, "notes.txt"), "mine");
        string[] merge = ["merge", "--model", Fixtures.Base("gpt2"), "--adapter", Case("gpt2.lora"), "--out", output, "--dtype", "bf16"];
        var (code, _, stderr) = ParityTests.Peft(merge);
        Assert.Equal(2, code);
        Assert.Contains("exists and is not empty; pass --overwrite", stderr);
        (code, _, stderr) = ParityTests.Peft([.. merge, "--overwrite"]);
        Assert.Equal(2, code);
        Assert.Equal($"error: --out {output} holds notes.txt, which a merge does not write; --overwrite replaces only a folder peft merge wrote: move it away or choose another folder",
            stderr.TrimEnd());
        Assert.Equal("mine", File.ReadAllText(Path.Combine(output, "notes.txt")));

        File.Delete(Path.Combine(output, "notes.txt"));
        foreach (var f in Directory.GetFiles(Fixtures.Base("gpt2"))) File.Copy(f, Path.Combine(output, Path.GetFileName(f)));
        (code, _, stderr) = ParityTests.Peft([.. merge, "--overwrite"]);
        Assert.Equal(2, code);
        Assert.Contains("is a model folder peft merge did not write (it has no peftdsl_merge.json)", stderr);
        foreach (var f in Directory.GetFiles(output)) File.Delete(f);

        Assert.Equal(0, ParityTests.Peft(merge).Code);
        File.WriteAllText(Path.Combine(output, "tokenizer.json"), "{}");   // as if a base with a tokenizer.json had been merged before
        (code, _, stderr) = ParityTests.Peft([.. merge, "--overwrite"]);
        Assert.True(code == 0, stderr);
        Assert.False(File.Exists(Path.Combine(output, "tokenizer.json")));
        Assert.Equal("bfloat16", System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(output, "config.json")))!["dtype"]!.GetValue<string>());
        using (var reader = Checkpoints.Safetensors.SafetensorsReader.Open(Path.Combine(output, "model.safetensors")))
            Assert.All(reader.Entries.Values, e => Assert.Equal(ScalarType.BFloat16, e.DType));

        Directory.CreateSymbolicLink(dir.File("link"), Fixtures.Base("gpt2"));
        (code, _, stderr) = ParityTests.Peft("merge", "--model", Fixtures.Base("gpt2"), "--adapter", Case("gpt2.lora"), "--out", dir.File("link"), "--overwrite");
        Assert.Equal(2, code);
        Assert.Contains("is or contains the base model folder", stderr);   // the link is resolved before comparing
        Assert.True(File.Exists(Path.Combine(Fixtures.Base("gpt2"), "model.safetensors")));
        Directory.CreateSymbolicLink(dir.File("elsewhere"), output);
        (code, _, stderr) = ParityTests.Peft("merge", "--model", Fixtures.Base("gpt2"), "--adapter", Case("gpt2.lora"), "--out", dir.File("elsewhere"), "--overwrite");
        Assert.Equal(2, code);
        Assert.Contains("is a symbolic link", stderr);
    }

    /// <summary>Without a download, the counts peft prints for GPT-2 124M with LoRA r=8 on c_attn.</summary>
    [Fact]
    public void InspectShowsPeftsCountsForABuiltInShape()
    {
        var (code, stdout, stderr) = ParityTests.Peft("inspect", "--shape", "gpt2-small", "--method", "lora", "--r", "8", "--targets", "c_attn");
        Assert.True(code == 0, stderr);
        Assert.EndsWith("trainable params: 294,912 || all params: 124,734,720 || trainable%: 0.2364", stdout.TrimEnd());
    }

    /// <summary>One prompt's continuation is written as it is produced, and is the library's.</summary>
    [Fact]
    public void GenerateStreamsOnePrompt()
    {
        var writer = new StringWriter();
        Assert.Equal(0, Cli.Commands.GenerateCommand.Run(Fixtures.Base("gpt2"), [], ["5 17 301"], new Generation.GenerationOptions { MaxNewTokens = 5 }, true, writer,
            adapter: Case("gpt2.lora")));
        using var model = Gpt2LMHeadModel.FromPretrained(Fixtures.Base("gpt2"));
        model.Adapters.Load(Case("gpt2.lora"));
        var options = Generation.GenerationDefaults.FromFolder(Fixtures.Base("gpt2")).ApplyTo(new GenerationOptions { MaxNewTokens = 5 }, padGiven: false);
        Assert.Equal(string.Join(" ", TextGenerator.Generate(model, [[5, 17, 301]], options)[0]), writer.ToString().Trim());
    }
}
