using System.Diagnostics;
using System.Text.Json;
using PeftDsl.Models.Llama;
using PeftDsl.Models.T5;
using PeftDsl.Runtime;
using PeftDsl.Testing;
using PeftDsl.Training;
using Xunit;

namespace PeftDsl.Tests.Training;

/// <summary><c>peft train</c> and <c>peft eval</c> end to end on the tiny Llama, as a user runs them.</summary>
public sealed class TrainCliTests
{
    internal static readonly string[] Words = ["tuning", "adapters", "low", "rank", "hello", "world"];

    /// <summary>A folder with a tokenizer and two tasks' JSONL files (train.jsonl, 48 records; dev.jsonl, 6).</summary>
    internal static TempDir Workspace()
    {
        var dir = new TempDir();
        Directory.CreateDirectory(dir.File("tok"));
        File.Copy(Repo.File("tests", "fixtures", "tokenizers", "llama-bpe.model"), Path.Combine(dir.File("tok"), "tokenizer.model"));
        var random = new Random(0);
        File.WriteAllLines(dir.File("train.jsonl"), Enumerable.Range(0, 48).Select(i =>
        {
            var w = Words[random.Next(Words.Length)];
            return JsonSerializer.Serialize(new { input = $"Repeat: {w} =", output = w, taskname = i % 2 == 0 ? "repeat" : "echo" });
        }));
        File.WriteAllLines(dir.File("dev.jsonl"), Words.Select((w, i) => JsonSerializer.Serialize(new { input = $"Repeat: {w} =", output = w, taskname = i % 2 == 0 ? "repeat" : "echo" })));
        return dir;
    }

    /// <summary>peft train on the workspace; <paramref name="extra"/> options replace the defaults of the same name.</summary>
    private static string[] Train(TempDir dir, string output, params string[] extra)
    {
        var defaults = new[] { ("--model", Fixtures.Base("llama")), ("--batch", "8"), ("--lr", "5e-3"), ("--log-every", "2") }
            .Where(d => !extra.Contains(d.Item1)).SelectMany(d => new[] { d.Item1, d.Item2 });
        return ["train", "--tokenizer", dir.File("tok"), "--data", dir.File("train.jsonl"), "--out", dir.File(output), .. defaults, .. extra];
    }

    [Fact]
    public void TrainWritesAPeftAdapterMetricsAPlotAndACheckpoint()
    {
        using var dir = Workspace();
        var (code, stdout, stderr) = ParityTests.Peft(Train(dir, "run", "--steps", "6", "--eval", dir.File("dev.jsonl"), "--eval-every", "3"));
        Assert.True(code == 0, stderr);
        Assert.Contains("step 6/6", stdout);
        Assert.Contains("eval at step 3:", stdout);
        Assert.Contains("finished after 6 steps", stdout);
        var run = dir.File("run");
        var lines = File.ReadAllLines(Path.Combine(run, "metrics.jsonl"));
        Assert.Equal(3 + 2, lines.Length);   // steps 2, 4, 6 and two evaluations
        Assert.All(lines, l => Assert.True(JsonDocument.Parse(l).RootElement.TryGetProperty("step", out _)));
        Assert.Equal([0x89, (byte)'P', (byte)'N', (byte)'G'], File.ReadAllBytes(Path.Combine(run, "loss.png")).Take(4).ToArray());
        Assert.Equal(6, TrainingCheckpoint.ReadState(Path.Combine(run, "checkpoint")).Step);

        using var model = LlamaForCausalLM.FromPretrained(Fixtures.Base("llama"));
        model.Adapters.Load(run);   // peft's format
        Assert.Equal(["default"], model.Adapters.Names);

        (code, stdout, stderr) = ParityTests.Peft("eval", "--model", Fixtures.Base("llama"), "--tokenizer", dir.File("tok"), "--adapter", run, "--data", dir.File("dev.jsonl"));
        Assert.True(code == 0, stderr);
        Assert.Contains("repeat", stdout);
        Assert.Contains("echo", stdout);
        Assert.Contains("all", stdout);
    }

    [Fact]
    public void OutputsAreNeverReplacedBySurpriseAndResumeContinues()
    {
        using var dir = Workspace();
        Assert.Equal(0, ParityTests.Peft(Train(dir, "run", "--steps", "4", "--save-every", "2")).Code);
        var (code, _, stderr) = ParityTests.Peft(Train(dir, "run", "--steps", "4"));
        Assert.Equal(2, code);
        Assert.Contains("is not empty; pass --overwrite to replace it, or --resume to continue its run", stderr);

        (code, var stdout, stderr) = ParityTests.Peft(Train(dir, "run", "--steps", "4", "--resume"));
        Assert.True(code == 0, stderr);
        Assert.Contains("resuming at step 4", stdout);

        (code, _, stderr) = ParityTests.Peft(Train(dir, "other", "--steps", "4", "--resume"));
        Assert.Equal(2, code);
        Assert.Contains("holds no checkpoint to resume", stderr);
        (code, _, stderr) = ParityTests.Peft(Train(dir, "run", "--steps", "4", "--resume", "--lr", "1e-3"));
        Assert.Equal(2, code);
        Assert.Contains("settings differ from the checkpoint's: --lr 0.005 → 0.001", stderr);
        (code, _, stderr) = ParityTests.Peft(Train(dir, "run", "--steps", "6", "--resume"));
        Assert.Equal(2, code);
        Assert.Contains("total steps (--steps, or --epochs over the data): 4, this run has 6", stderr);

        Assert.Equal(0, ParityTests.Peft(Train(dir, "run", "--steps", "2", "--overwrite")).Code);
        Assert.Equal(2, TrainingCheckpoint.ReadState(dir.File("run/checkpoint")).Step);
        Assert.Empty(Directory.GetDirectories(dir.Path, ".run.*"));   // the swap left no staging folder

        File.WriteAllText(dir.File("run/notes.txt"), "mine");
        (code, _, stderr) = ParityTests.Peft(Train(dir, "run", "--steps", "2", "--overwrite"));
        Assert.Equal(2, code);
        Assert.Contains("--overwrite replaces only an earlier peft train run, but", stderr);
        Assert.Contains("also holds notes.txt", stderr);
        Assert.Equal("mine", File.ReadAllText(dir.File("run/notes.txt")));
    }

    /// <summary>An --overwrite run killed midway leaves the previous run as it was; Ctrl-C stops a run after a
    /// step with a checkpoint that --resume finishes.</summary>
    [Fact]
    public void AnInterruptedRunKeepsWhatWasThere()
    {
        using var dir = Workspace();
        Assert.Equal(0, ParityTests.Peft(Train(dir, "run", "--steps", "2")).Code);
        var adapter = File.ReadAllBytes(dir.File("run/adapter_model.safetensors"));
        var metrics = File.ReadAllText(dir.File("run/metrics.jsonl"));

        using (var killed = Start(Train(dir, "run", "--steps", "400", "--log-every", "1", "--overwrite")))
        {
            WaitForLine(killed, "step 1/400");
            killed.Kill(entireProcessTree: true);
            killed.WaitForExit();
        }
        Assert.Equal(adapter, File.ReadAllBytes(dir.File("run/adapter_model.safetensors")));
        Assert.Equal(metrics, File.ReadAllText(dir.File("run/metrics.jsonl")));
        Assert.Equal(2, TrainingCheckpoint.ReadState(dir.File("run/checkpoint")).Step);

        using (var stopped = Start(Train(dir, "run", "--steps", "400", "--log-every", "1", "--overwrite")))
        {
            WaitForLine(stopped, "step 1/400");
            using (var kill = Process.Start("kill", ["-INT", stopped.Id.ToString()])) kill.WaitForExit();
            Assert.True(stopped.WaitForExit(60_000), "the run did not stop after SIGINT");
            var stderr = stopped.StandardError.ReadToEnd();
            Assert.Equal(1, stopped.ExitCode);
            Assert.Contains("stopped: continue with the same command and --resume instead of --overwrite", stderr);
        }
        Assert.Empty(Directory.GetDirectories(dir.Path, ".run.*"));   // the killed run's staging was cleaned up
        var step = TrainingCheckpoint.ReadState(dir.File("run/checkpoint")).Step;
        Assert.InRange(step, 1, 399);
        var (code, stdout, err) = ParityTests.Peft(Train(dir, "run", "--steps", "400", "--log-every", "100", "--resume"));
        Assert.True(code == 0, err);
        Assert.Contains($"resuming at step {step}", stdout);
        Assert.Contains("finished after 400 steps", stdout);
    }

    private static Process Start(string[] args)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "peft.dll"));
        foreach (var a in args) start.ArgumentList.Add(a);
        return Process.Start(start)!;
    }

    /// <summary>Reads the process's output until a line contains <paramref name="text"/>; fails if it ends first.</summary>
    internal static void WaitForLine(Process process, string text)
    {
        while (process.StandardOutput.ReadLine() is { } line)
            if (line.Contains(text)) return;
        // A caller that reads standard error asynchronously (an MPI job's) has it already.
        string errors;
        try
        {
            errors = process.StandardError.ReadToEnd();
        }
        catch (InvalidOperationException)
        {
            errors = "(standard error read by the caller)";
        }
        Assert.Fail($"the run ended before printing '{text}': {errors}");
    }

    [Theory]
    [InlineData("--lr", "-1", "--lr must be a number in (0, 1], got -1")]
    [InlineData("--lr", "5", "--lr must be a number in (0, 1], got 5")]
    [InlineData("--weight-decay", "3", "--weight-decay must be in [0, 1], got 3")]
    [InlineData("--seed", "-1", "--seed must be 0 or more, got -1")]
    [InlineData("--batch", "0", "--batch must be positive, got 0")]
    [InlineData("--schedule", "step", "--schedule: 'step' is not cosine, linear or constant")]
    [InlineData("--method", "loha", "--method loha: not lora, ia3, adapter, prompt, ptuning or prefix")]
    [InlineData("--adapter-dim", "8", "--adapter-dim applies to --method adapter")]
    [InlineData("--virtual-tokens", "8", "--virtual-tokens applies to --method prompt, ptuning or prefix, not lora")]
    [InlineData("--r", "0", "error: --r must be a positive whole number, got 0")]
    [InlineData("--alpha", "-2", "error: --alpha must be positive (the update is scaled by alpha / r), got -2")]
    [InlineData("--targets", "", "error: --targets names no module")]
    [InlineData("--patience", "2", "error: --patience follows evaluations, which need --eval FILE")]
    [InlineData("--lr", "1,5", "error: --lr: '1,5' is not a number (write decimals with a point: 0.5, 2e-4)")]
    [InlineData("--stpes", "3", "unknown option '--stpes' (did you mean --steps?)")]
    [InlineData("--max-length", "100000", "--max-length 100000 exceeds the model's 64 positions")]
    [InlineData("--targets", "qq_proj", "target 'qq_proj' matches no linear module")]
    [InlineData("--lr", "abc", "error: --lr: 'abc' is not a number")]
    [InlineData("--steps", "1.5", "error: --steps: '1.5' is not a whole number (see 'peft train --help')")]
    public void BadOptionsAreOneErrorLine(string option, string value, string message)
    {
        using var dir = Workspace();
        var (code, stdout, stderr) = ParityTests.Peft(Train(dir, "run", option, value));
        Assert.Equal(2, code);
        var line = Assert.Single(stderr.TrimEnd().Split('\n'));
        Assert.StartsWith("error: ", line);
        Assert.Contains(message, line);
        Assert.False(Directory.Exists(dir.File("run")) && Directory.EnumerateFileSystemEntries(dir.File("run")).Any());
    }

    /// <summary>Prompt learning through the CLI: the run writes peft's prompt file, which eval and generate load.</summary>
    [Theory]
    [InlineData("prompt", "--prompt-init", "vocab")]
    [InlineData("ptuning", "--encoder", "lstm")]
    [InlineData("prefix", "--prefix-projection", "true")]
    [InlineData("prefix", "--prefix-projection", "false", "t5")]
    public void PromptLearningTrainsAndItsAdapterLoads(string method, string option, string value, string family = "llama")
    {
        using var dir = Workspace();
        var (code, stdout, stderr) = ParityTests.Peft(Train(dir, "run", "--model", Fixtures.Base(family), "--steps", "4", "--method", method,
            "--virtual-tokens", "6", option, value, "--eval", dir.File("dev.jsonl")));
        Assert.True(code == 0, stderr);
        Assert.Contains("with 6 virtual tokens", stdout);
        Assert.Contains("finished after 4 steps", stdout);
        var config = File.ReadAllText(dir.File("run/adapter_config.json"));
        Assert.Contains(method switch { "prompt" => "PROMPT_TUNING", "ptuning" => "P_TUNING", _ => "PREFIX_TUNING" }, config);

        using LanguageModel model = family == "t5" ? T5ForConditionalGeneration.FromPretrained(Fixtures.Base("t5")) : LlamaForCausalLM.FromPretrained(Fixtures.Base("llama"));
        model.Prompts.Load(dir.File("run"));
        Assert.Equal(["default"], model.Prompts.Names);

        (code, stdout, stderr) = ParityTests.Peft("eval", "--model", Fixtures.Base(family), "--tokenizer", dir.File("tok"), "--adapter", dir.File("run"), "--data", dir.File("dev.jsonl"));
        Assert.True(code == 0, stderr);
        Assert.Contains("repeat", stdout);
        (code, _, stderr) = ParityTests.Peft(Train(dir, "run", "--model", Fixtures.Base(family), "--steps", "4", "--method", method, "--virtual-tokens", "7", option, value, "--resume"));
        Assert.Equal(2, code);
        Assert.Contains("--virtual-tokens 6 → 7", stderr);
    }

    /// <summary>NeMo's prompt table: tasks trained one after another into one folder; adding one leaves the others'
    /// bytes as they were, and eval runs each example with the task its taskname names.</summary>
    [Fact]
    public void TasksTrainIntoOnePromptTable()
    {
        using var dir = Workspace();
        var table = dir.File("table");
        var (code, stdout, stderr) = ParityTests.Peft(Train(dir, "a", "--steps", "3", "--method", "ptuning", "--virtual-tokens", "4", "--task", "repeat", "--table", table));
        Assert.True(code == 0, stderr);
        Assert.Contains($"added task 'repeat' to the prompt table {table}", stdout);
        var before = TensorBytes(table, "repeat");

        (code, _, stderr) = ParityTests.Peft(Train(dir, "b", "--steps", "3", "--method", "prompt", "--virtual-tokens", "6", "--task", "echo", "--table", table));
        Assert.True(code == 0, stderr);
        Assert.Equal(before, TensorBytes(table, "repeat"));

        (code, _, stderr) = ParityTests.Peft(Train(dir, "c", "--steps", "3", "--method", "prompt", "--task", "echo", "--table", table));
        Assert.Equal(2, code);
        Assert.Contains("already has a task 'echo'; choose another --task name", stderr);
        Assert.False(Directory.Exists(dir.File("c")) && Directory.EnumerateFileSystemEntries(dir.File("c")).Any());

        (code, stdout, stderr) = ParityTests.Peft("eval", "--model", Fixtures.Base("llama"), "--tokenizer", dir.File("tok"), "--adapter", table, "--data", dir.File("dev.jsonl"));
        Assert.True(code == 0, stderr);
        Assert.Contains("repeat", stdout);
        Assert.Contains("echo", stdout);

        // A table's tasks keep their training layout: another template is refused; generate needs one task named.
        (code, _, stderr) = ParityTests.Peft("eval", "--model", Fixtures.Base("llama"), "--tokenizer", dir.File("tok"), "--adapter", table,
            "--data", dir.File("dev.jsonl"), "--template", "Q: {input}");
        Assert.Equal(2, code);
        Assert.Contains("task 'repeat' was trained with --template \"(the input field)\"", stderr);
        (code, _, stderr) = ParityTests.Peft("generate", "--model", Fixtures.Base("llama"), "--tokenizer", dir.File("tok"), "--adapter", table, "--prompt", "Repeat: low =");
        Assert.Equal(2, code);
        Assert.Contains("holds several prompt tasks (repeat, echo): choose one with --use NAME", stderr);
        (code, _, stderr) = ParityTests.Peft("generate", "--model", Fixtures.Base("llama"), "--tokenizer", dir.File("tok"), "--adapter", table, "--use", "echo", "--prompt", "Repeat: low =");
        Assert.True(code == 0, stderr);
        (code, _, stderr) = ParityTests.Peft(Train(dir, "d", "--steps", "1", "--method", "prompt", "--task", "__metadata__", "--table", table));
        Assert.Equal(2, code);
        Assert.Contains("'__metadata__' is not a usable --task name", stderr);

        using var model = LlamaForCausalLM.FromPretrained(Fixtures.Base("llama"));
        Assert.Equal(["repeat", "echo"], model.Prompts.LoadTable(table));
        Assert.Equal(6, model.Prompts["echo"].NumVirtualTokens);
    }

    /// <summary>IA3 through the CLI: peft's IA3 folder, loaded by eval; a resume with other feed-forward modules is refused.</summary>
    [Fact]
    public void Ia3TrainsAndItsAdapterLoads()
    {
        using var dir = Workspace();
        var (code, stdout, stderr) = ParityTests.Peft(Train(dir, "run", "--steps", "4", "--save-every", "2", "--method", "ia3", "--lr", "3e-2",
            "--targets", "k_proj,v_proj,down_proj", "--feedforward", "down_proj"));
        Assert.True(code == 0, stderr);
        Assert.Contains("IA3 on k_proj, v_proj, down_proj", stdout);
        // An option at its default is not recorded, so checkpoints from before it existed resume unchanged.
        Assert.DoesNotContain("--ia3-placement", TrainingCheckpoint.ReadState(dir.File("run/checkpoint")).Settings!.Keys);
        Assert.Contains("\"peft_type\": \"IA3\"", File.ReadAllText(dir.File("run/adapter_config.json")));
        using (var model = LlamaForCausalLM.FromPretrained(Fixtures.Base("llama")))
        {
            model.Ia3.Load(dir.File("run"));
            Assert.True(model.model.layers[0].mlp.down_proj.Ia3.IsFeedforward("default"));
        }
        (code, stdout, stderr) = ParityTests.Peft("eval", "--model", Fixtures.Base("llama"), "--tokenizer", dir.File("tok"), "--adapter", dir.File("run"), "--data", dir.File("dev.jsonl"));
        Assert.True(code == 0, stderr);
        (code, _, stderr) = ParityTests.Peft(Train(dir, "run", "--steps", "4", "--method", "ia3", "--lr", "3e-2", "--targets", "k_proj,v_proj,down_proj", "--resume"));
        Assert.Equal(2, code);
        Assert.Contains("--feedforward down_proj → (the model's default)", stderr);
    }

    /// <summary>NeMo's <c>peft_scheme: "ptuning,lora"</c>: both train in one run, each into its own peft folder
    /// (out/ptuning, out/lora) that loads alone; eval runs them together; --resume restores both.</summary>
    [Fact]
    public void CombinedMethodsTrainTogetherIntoOneFolderEach()
    {
        using var dir = Workspace();
        var (code, stdout, stderr) = ParityTests.Peft(Train(dir, "run", "--steps", "4", "--save-every", "2", "--method", "ptuning,lora", "--virtual-tokens", "4"));
        Assert.True(code == 0, stderr);
        Assert.Contains("P-tuning (mlp encoder) with 4 virtual tokens + LoRA r=8", stdout);
        Assert.Contains("wrote " + dir.File("run") + ": ptuning/, lora/ (an adapter folder each)", stdout);
        Assert.Contains("\"peft_type\": \"P_TUNING\"", File.ReadAllText(dir.File("run/ptuning/adapter_config.json")));
        Assert.Contains("\"peft_type\": \"LORA\"", File.ReadAllText(dir.File("run/lora/adapter_config.json")));
        Assert.False(File.Exists(dir.File("run/adapter_config.json")));
        using (var model = LlamaForCausalLM.FromPretrained(Fixtures.Base("llama")))
        {
            model.Prompts.Load(dir.File("run/ptuning"), "ptuning");
            model.Adapters.Load(dir.File("run/lora"), "lora");
        }
        (code, stdout, stderr) = ParityTests.Peft("eval", "--model", Fixtures.Base("llama"), "--tokenizer", dir.File("tok"), "--adapter", dir.File("run"), "--data", dir.File("dev.jsonl"));
        Assert.True(code == 0, stderr);
        Assert.Contains("repeat", stdout);
        (code, stdout, stderr) = ParityTests.Peft(Train(dir, "run", "--steps", "4", "--method", "ptuning,lora", "--virtual-tokens", "4", "--resume"));
        Assert.True(code == 0, stderr);
        Assert.Contains("resuming at step 4", stdout);
        (code, _, stderr) = ParityTests.Peft(Train(dir, "run", "--steps", "4", "--method", "ptuning,lora", "--virtual-tokens", "4", "--r", "4", "--resume"));
        Assert.Equal(2, code);
        Assert.Contains("lora: --r 8 → 4", stderr);
    }

    /// <summary>Adapters + IA3 in NeMo's placement, the other combination NeMo's recipes use.</summary>
    [Fact]
    public void AdaptersAndNemoPlacedIa3TrainTogether()
    {
        using var dir = Workspace();
        var (code, stdout, stderr) = ParityTests.Peft(Train(dir, "run", "--steps", "2", "--method", "adapter,ia3", "--adapter-dim", "4", "--ia3-placement", "nemo",
            "--adapter-placement", "parallel", "--adapter-tie"));
        Assert.True(code == 0, stderr);
        Assert.Contains("tied parallel bottleneck adapters of width 4 (swish) at every adapter site + IA3 (NeMo placement: keys, values, MLP activation)", stdout);
        using var model = LlamaForCausalLM.FromPretrained(Fixtures.Base("llama"));
        model.Ia3.Load(dir.File("run/ia3"), "ia3");
        model.Bottleneck.Load(dir.File("run/adapter"), "adapter");
        Assert.Equal(Peft.Ia3.Ia3Placement.Nemo, model.Ia3["ia3"].Placement);
        Assert.True(model.Bottleneck["adapter"].TieWeights);
        Assert.Equal(Peft.Adapters.BottleneckPlacement.Parallel, model.Bottleneck["adapter"].Placement);
    }

    [Theory]
    [InlineData("prompt,ptuning", "a model runs one virtual prompt")]
    [InlineData("lora,lora", "--method names lora twice")]
    [InlineData("lora,loha", "--method loha: not lora, ia3, adapter, prompt, ptuning or prefix (a combination lists methods separated by commas")]
    public void BadCombinationsAreOneErrorLine(string methods, string message)
    {
        using var dir = Workspace();
        var (code, _, stderr) = ParityTests.Peft(Train(dir, "run", "--method", methods));
        Assert.Equal(2, code);
        Assert.Contains(message, Assert.Single(stderr.TrimEnd().Split('\n')));
    }

    /// <summary>Bottleneck adapters through the CLI: our own peft-layout folder, loaded by eval; refused by merge.</summary>
    [Fact]
    public void BottleneckAdaptersTrainAndLoad()
    {
        using var dir = Workspace();
        var (code, stdout, stderr) = ParityTests.Peft(Train(dir, "run", "--steps", "3", "--save-every", "3", "--method", "adapter", "--adapter-dim", "8",
            "--adapter-activation", "gelu", "--adapter-sites", "mlp_adapter"));
        Assert.True(code == 0, stderr);
        Assert.Contains("bottleneck adapters of width 8 (gelu) at mlp_adapter", stdout);
        Assert.Contains("\"peft_type\": \"PEFTDSL_BOTTLENECK\"", File.ReadAllText(dir.File("run/adapter_config.json")));
        (code, _, stderr) = ParityTests.Peft("eval", "--model", Fixtures.Base("llama"), "--tokenizer", dir.File("tok"), "--adapter", dir.File("run"), "--data", dir.File("dev.jsonl"));
        Assert.True(code == 0, stderr);
        (code, _, stderr) = ParityTests.Peft("merge", "--model", Fixtures.Base("llama"), "--adapter", dir.File("run"), "--out", dir.File("merged"));
        Assert.Equal(2, code);
        Assert.Contains("bottleneck adapters (default) add layers with a nonlinearity; they cannot be merged", stderr);
        (code, _, stderr) = ParityTests.Peft(Train(dir, "run", "--steps", "3", "--method", "adapter", "--adapter-dim", "16",
            "--adapter-activation", "gelu", "--adapter-sites", "mlp_adapter", "--resume"));
        Assert.Equal(2, code);
        Assert.Contains("--adapter-dim 8 → 16", stderr);
    }

    /// <summary>T-Few through the CLI: multiple-choice JSONL, --tfew, rank accuracy in train's and eval's results.</summary>
    [Fact]
    public void TFewTrainsOnMultipleChoiceDataAndReportsRankAccuracy()
    {
        using var dir = Workspace();
        File.WriteAllLines(dir.File("mc.jsonl"), Words.Select((w, i) => JsonSerializer.Serialize(new
        {
            input = $"Repeat: {w} =", choices = new[] { w, Words[(i + 1) % Words.Length], Words[(i + 2) % Words.Length] }, label = 0,
        })));
        var (code, stdout, stderr) = ParityTests.Peft("train", "--model", Fixtures.Base("llama"), "--tokenizer", dir.File("tok"), "--data", dir.File("mc.jsonl"),
            "--eval", dir.File("mc.jsonl"), "--out", dir.File("run"), "--steps", "2", "--batch", "3", "--tfew");
        Assert.True(code == 0, stderr);
        // The value, recomputed here: each example's choices scored with the saved adapter, the best against the label.
        var tokenizer = Tokenization.TokenizerLoader.FromFolder(dir.File("tok"), "llama", 512);
        var examples = Data.ExampleTokenizer.Tokenize(Data.JsonlDataset.Read(dir.File("mc.jsonl"), Data.DataFormat.InputOutput), tokenizer,
            Data.DataFormat.InputOutput, 64);
        using var model = Models.Llama.LlamaForCausalLM.FromPretrained(Fixtures.Base("llama"));
        model.Adapters.Load(dir.File("run"));
        var right = 0;
        using (TorchSharp.torch.no_grad())
            foreach (var e in examples)
            {
                using var scores = MultipleChoice.Score(model, e.Prompt, e.Choices!);
                if (MultipleChoice.Predict(scores) == e.Label) right++;
            }
        var expected = ((double)right / examples.Count).ToString("P1", System.Globalization.CultureInfo.InvariantCulture);
        Assert.Contains($", rank accuracy {expected}", stdout);
        (code, stdout, stderr) = ParityTests.Peft("eval", "--model", Fixtures.Base("llama"), "--tokenizer", dir.File("tok"), "--adapter", dir.File("run"), "--data", dir.File("mc.jsonl"));
        Assert.True(code == 0, stderr);
        Assert.Contains("rank accuracy", stdout);
        Assert.Contains(expected, stdout.Split('\n').Single(l => l.Contains("default")));
        (code, _, stderr) = ParityTests.Peft(Train(dir, "plain", "--steps", "1", "--tfew"));
        Assert.Equal(2, code);
        Assert.Contains("has no multiple-choice examples", stderr);
    }

    /// <summary>NeMo's template markers through the CLI: virtual tokens inside the prompt, split between two markers.</summary>
    [Fact]
    public void TemplateMarkersPlaceVirtualTokensInsideThePrompt()
    {
        using var dir = Workspace();
        const string template = "<|VIRTUAL_PROMPT_0|>{input}<|VIRTUAL_PROMPT_1|>";
        var (code, stdout, stderr) = ParityTests.Peft(Train(dir, "run", "--steps", "3", "--method", "ptuning", "--virtual-tokens", "6",
            "--template", template, "--virtual-token-splits", "2,4", "--eval", dir.File("dev.jsonl")));
        Assert.True(code == 0, stderr);
        Assert.Contains("finished after 3 steps", stdout);
        (code, stdout, stderr) = ParityTests.Peft("eval", "--model", Fixtures.Base("llama"), "--tokenizer", dir.File("tok"), "--adapter", dir.File("run"),
            "--data", dir.File("dev.jsonl"), "--template", template, "--virtual-token-splits", "2,4");
        Assert.True(code == 0, stderr);
        Assert.Contains("repeat", stdout);

        // In a prompt table, generate runs the task in its template: --prompt text fills {input} between the markers,
        // which gives what the same ids with the slots written out give; ids without slots are refused.
        var table = dir.File("table");
        (code, _, stderr) = ParityTests.Peft(Train(dir, "tabled", "--steps", "3", "--method", "ptuning", "--virtual-tokens", "6",
            "--template", template, "--virtual-token-splits", "2,4", "--task", "repeat", "--table", table));
        Assert.True(code == 0, stderr);
        string[] Generate(params string[] prompt) =>
            ["generate", "--model", Fixtures.Base("llama"), "--tokenizer", dir.File("tok"), "--adapter", table, "--use", "repeat", "--max-new-tokens", "4", "--ids", .. prompt];
        var (textCode, fromText, textErr) = ParityTests.Peft(Generate("--prompt", "Repeat: low ="));
        Assert.True(textCode == 0, textErr);
        var tokenizer = PeftDsl.Tokenization.TokenizerLoader.FromFolder(dir.File("tok"), "llama", 512);
        long[] slotted = [tokenizer.Bos!.Value, -1, -2, .. tokenizer.EncodePiece("Repeat: low ="), -3, -4, -5, -6];
        var (idsCode, fromIds, idsErr) = ParityTests.Peft(Generate("--prompt-ids", string.Join(' ', slotted)));
        Assert.True(idsCode == 0, idsErr);
        Assert.Equal(fromIds, fromText);
        (code, _, stderr) = ParityTests.Peft(Generate("--prompt-ids", string.Join(' ', tokenizer.Encode("Repeat: low ="))));
        Assert.Equal(2, code);
        Assert.Contains("was trained with the template \"<|VIRTUAL_PROMPT_0|>{input}<|VIRTUAL_PROMPT_1|>\"; give the prompt as --prompt text", stderr);

        (code, _, stderr) = ParityTests.Peft(Train(dir, "lora", "--steps", "1", "--template", template));
        Assert.Equal(2, code);
        Assert.Contains("markers (and --virtual-token-splits) place virtual tokens: they need --method prompt or ptuning", stderr);
        (code, _, stderr) = ParityTests.Peft(Train(dir, "bad", "--steps", "1", "--method", "prompt", "--virtual-tokens", "6", "--template", template, "--virtual-token-splits", "2,5"));
        Assert.Equal(2, code);
        Assert.Contains("--virtual-token-splits 2,5 add up to 7, but the task has 6 virtual tokens", stderr);
    }

    /// <summary>The raw bytes of one tensor of the table's safetensors file.</summary>
    private static byte[] TensorBytes(string table, string task)
    {
        var path = Path.Combine(table, PeftDsl.Peft.Prompts.PromptTableFile.TensorsFile);
        using var reader = PeftDsl.Checkpoints.Safetensors.SafetensorsReader.Open(path);
        var entry = reader.Entries[task];
        var bytes = File.ReadAllBytes(path);
        var headerLength = (long)BitConverter.ToUInt64(bytes, 0);
        return bytes.AsSpan((int)(8 + headerLength + entry.Begin), (int)entry.ByteLength).ToArray();
    }

    [Theory]
    [InlineData("--method", "prompt", "--r", "4", "--r is a LoRA option; --method prompt does not take it")]
    [InlineData("--method", "prompt", "--encoder", "lstm", "--encoder does not apply to --method prompt")]
    [InlineData("--method", "ptuning", "--encoder", "gru", "--encoder: 'gru' is not mlp, lstm or nemo-mlp")]
    [InlineData("--method", "ptuning", "--virtual-tokens", "0", "--virtual-tokens must be a positive whole number, got 0")]
    [InlineData("--method", "prompt", "--prompt-init", "text", "--prompt-init text needs --prompt-init-text")]
    [InlineData("--method", "ptuning", "--encoder-layers", "3", "--encoder-layers applies to --encoder lstm")]
    [InlineData("--method", "prompt", "--task", "x", "--task needs --table DIR")]
    [InlineData("--method", "ia3", "--r", "4", "--r is a LoRA option; --method ia3 does not take it")]
    [InlineData("--method", "lora", "--feedforward", "down_proj", "--feedforward applies to --method ia3")]
    [InlineData("--method", "lora", "--table", "t", "--table needs --task NAME")]
    [InlineData("--method", "prefix", "--virtual-tokens", "100", "100 virtual tokens leave no room for an example in the model's 64 positions")]
    [InlineData("--method", "prompt", "--max-length", "60", "--max-length 60 plus 20 virtual tokens exceeds the model's 64 positions")]
    [InlineData("--method", "lora", "--base-dropout", "1.5", "--base-dropout: '1.5' is not config or a probability in [0, 1]")]
    [InlineData("--method", "lora", "--base-dropout", "none", "--base-dropout: 'none' is not config or a probability in [0, 1]")]
    public void BadMethodOptionsAreOneErrorLine(string o1, string v1, string o2, string v2, string message)
    {
        using var dir = Workspace();
        var (code, _, stderr) = ParityTests.Peft(Train(dir, "run", "--steps", "1", o1, v1, o2, v2));
        Assert.Equal(2, code);
        var line = Assert.Single(stderr.TrimEnd().Split('\n'));
        Assert.StartsWith("error: ", line);
        Assert.Contains(message, line);
    }

    [Fact]
    public void ABrokenJsonlLineIsNamed()
    {
        using var dir = Workspace();
        File.AppendAllText(dir.File("train.jsonl"), "{\"input\": \"x\", \"output\": }\n");
        var (code, _, stderr) = ParityTests.Peft(Train(dir, "run", "--steps", "1"));
        Assert.Equal(2, code);
        Assert.Contains($"{dir.File("train.jsonl")}:49: not valid JSON", stderr);
    }

    /// <summary>Killed at random moments while it saves a checkpoint after every step, the run always leaves a whole
    /// checkpoint (or none yet), never a half-written one, and --resume finishes from it.</summary>
    [Fact]
    public void AKillDuringASaveLeavesTheLastCheckpointWhole()
    {
        using var dir = Workspace();
        var random = new Random(1);
        // At least four kills, and more until one has left a checkpoint to resume from (a slow machine may still be
        // loading when the first kills land).
        for (var attempt = 0; attempt < 4 || (!TrainingCheckpoint.Exists(dir.File("run/checkpoint")) && attempt < 12); attempt++)
        {
            // Until a checkpoint exists, start afresh in place (an --overwrite run would train beside the folder).
            var fresh = !TrainingCheckpoint.Exists(dir.File("run/checkpoint"));
            if (fresh && Directory.Exists(dir.File("run"))) Directory.Delete(dir.File("run"), recursive: true);
            string[] options = ["--steps", "400", "--save-every", "1", "--log-every", "50", .. fresh ? Array.Empty<string>() : ["--resume"]];
            using var process = Start(Train(dir, "run", options));
            // Timed from the data line, so that the kill lands in the training loop whatever the start-up cost.
            WaitForLine(process, "data ");
            Thread.Sleep(100 + random.Next(600) + 150 * attempt);
            process.Kill(entireProcessTree: true);
            process.WaitForExit();

            var checkpoint = dir.File("run/checkpoint");
            if (!TrainingCheckpoint.Exists(checkpoint)) continue;
            var state = TrainingCheckpoint.ReadState(checkpoint);
            using var model = LlamaForCausalLM.FromPretrained(Fixtures.Base("llama"));
            model.Adapters.Load(Path.Combine(checkpoint, TrainingCheckpoint.AdapterFolder), trainable: true);
            Assert.InRange(state.Step, 1, 400);
        }
        var (code, stdout, stderr) = ParityTests.Peft(Train(dir, "run", "--steps", "400", "--save-every", "100", "--log-every", "100", "--resume"));
        Assert.True(code == 0, stderr);
        Assert.Contains("finished after 400 steps", stdout);
        Assert.Empty(Directory.GetDirectories(dir.File("run"), ".*"));   // no staging folder left behind
    }
}
