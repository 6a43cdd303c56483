using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using PeftDsl.Checkpoints;
using PeftDsl.Cli.Commands;
using PeftDsl.Data;
using PeftDsl.Errors;
using PeftDsl.Models;
using PeftDsl.Models.Llama;
using PeftDsl.Peft;
using PeftDsl.Peft.Lora;
using PeftDsl.Peft.Prompts;
using PeftDsl.Runtime;
using PeftDsl.Tokenization;
using PeftDsl.Training;
using Spectre.Console;
using static TorchSharp.torch;

namespace PeftDsl.Cli.Demo;

/// <summary>
/// <c>peft demo</c>, the main job: a base that knows WordNet's facts in one form (pre-trained here, or --model) learns
/// three question-answer tasks, each with its own LoRA adapter. It prints each task's held-out exact match and loss
/// before and after, the base's checksum before and after (bit-identical), and each task evaluated with every
/// adapter, then all tasks in one mixed batch (each row with its own adapter).
/// </summary>
public static class DemoCommand
{
    /// <summary>Builds <c>peft demo</c>: <c>--model</c> (default: the embedded base, pre-trained here), <c>--out</c>
    /// (default <c>runs</c>), <c>--steps</c> per task (default 300) and <c>--quick</c>.</summary>
    public static Command Create()
    {
        var model = new Option<DirectoryInfo?>("--model") { Description = "Use this Hugging Face checkpoint (with its tokenizer) instead of the embedded pre-trained base" };
        var output = new Option<DirectoryInfo>("--out") { Description = "Run folder: data, base, one folder per task (adapter, metrics.jsonl, loss.png), summary.json", DefaultValueFactory = _ => new DirectoryInfo("runs") };
        var steps = new Option<int>("--steps") { Description = "LoRA steps per task", DefaultValueFactory = _ => 300 };
        var quick = new Option<bool>("--quick") { Description = "A short smoke run (tiny pre-training and few steps): checks the pipeline, shows no learning" };
        var command = new Command("demo", Program.Example("The main job: adapt a small pre-trained base to three tasks, one LoRA adapter each, and show before/after",
            "peft demo")) { model, output, steps, quick };
        command.SetAction(parse => Program.Guard(() =>
            Run(parse.GetValue(model)?.FullName, parse.GetValue(output)!.FullName, parse.GetValue(steps), parse.GetValue(quick), Console.Out)));
        return command;
    }

    /// <summary>Folders earlier versions of the demo wrote (P-tuning on pos, IA3 on thing): removed from a run folder.
    /// Declared before <see cref="RunEntries"/>, which its initializer reads.</summary>
    private static readonly string[] Retired = ["pos-ptuning", "thing-ia3"];

    /// <summary>What a demo run writes into --out: the only entries it may replace.</summary>
    private static readonly string[] RunEntries = ["data", "base", "base-quick", "adapters", "prompts", "ia3", "summary.json", PromptRun, Ia3Run, .. DemoData.Tasks, .. Retired];

    // Each method on a task it learns on this 2M-parameter base (measured in docs/demo.md): IA3 learns the part of speech
    // best; a prompt, which only steers what the frozen base computes, learns the kind of thing and stays below chance on
    // the part of speech.

    /// <summary>The task learned a second time, with IA3 vectors, and the folder of that run.</summary>
    private const string Ia3Task = "pos";
    private const string Ia3Run = "pos-ia3";
    private const double Ia3LearningRate = 3e-2;

    /// <summary>The task learned a second time, with P-tuning instead of LoRA, and the folder of that run.</summary>
    private const string PromptTask = "thing";
    private const string PromptRun = "thing-ptuning";

    private static readonly PromptConfig PTuning = new() { Method = PromptMethod.PTuning, NumVirtualTokens = 10 };

    /// <summary>NeMo's prompt template for the P-tuning task: 5 virtual tokens before the question and 5 after it, right
    /// where the answer starts (35.5 % held-out; all 10 in front of the question, 33.0 %: docs/demo.md).</summary>
    private static readonly DataFormat PromptFormat =
        new DataFormat(Template: "<|VIRTUAL_PROMPT_0|>{input}<|VIRTUAL_PROMPT_1|>", VirtualTokenSplits: [5, 5]).Validate();

    private static readonly LoraConfig Lora = new() { R = 8, Alpha = 16, Dropout = 0.05, TargetModules = ["all"] };

    /// <summary>Runs the demo into the run folder <paramref name="output"/>, pre-training the base unless
    /// <paramref name="modelDirectory"/> gives one, training <paramref name="steps"/> steps per task (a few with
    /// <paramref name="quick"/>) and writing the report to <paramref name="log"/> and <c>summary.json</c>. Returns 0; bad input
    /// throws a bad-input error.</summary>
    public static int Run(string? modelDirectory, string output, int steps, bool quick, TextWriter log)
    {
        if (steps <= 0) throw new PeftDslException($"--steps must be positive, got {steps}");
        CheckOutput(output, modelDirectory);
        foreach (var old in Retired.Select(r => Path.Combine(output, r)).Where(Directory.Exists)) Directory.Delete(old, recursive: true);
        // A given model is loaded before anything is written, so a wrong folder costs nothing.
        var given = modelDirectory is null ? null : (LanguageModel)StockModels.LoadGenerative(modelDirectory);
        var givenTokenizer = given is null ? null : TokenizerLoader.FromFolder(modelDirectory!, given.ModelType, given.VocabSize);
        var dataDirectory = Path.Combine(output, "data");
        var fingerprint = DemoData.WriteTo(dataDirectory);
        var baseDirectory = modelDirectory ?? (quick
            ? QuickBase(Path.Combine(output, "base-quick"), dataDirectory, fingerprint, log)
            : BaseModel.Ensure(Path.Combine(output, "base"), dataDirectory, fingerprint, log));

        using var lm = given ?? (LanguageModel)StockModels.LoadGenerative(baseDirectory);
        var tokenizer = givenTokenizer ?? TokenizerLoader.FromFolder(baseDirectory, lm.ModelType, lm.VocabSize);
        var maxLength = DataOptions.DefaultLength(baseDirectory) - PTuning.NumVirtualTokens;
        var tasks = DemoData.Tasks.Select(t => (Name: t,
            Train: DataOptions.Load(Path.Combine(dataDirectory, $"{t}.train.jsonl"), DataFormat.InputOutput, tokenizer, maxLength),
            Dev: DataOptions.Load(Path.Combine(dataDirectory, $"{t}.dev.jsonl"), DataFormat.InputOutput, tokenizer, maxLength))).ToList();
        var checksum = BaseChecksum.ShortHex(lm);
        log.WriteLine($"base checksum before: {checksum}");

        var before = tasks.ToDictionary(t => t.Name, t => Evaluator.Run(lm, tokenizer, t.Dev, 32));
        var options = new TrainerOptions
        {
            MaxSteps = quick ? Math.Min(steps, 4) : steps, BatchSize = 16, LearningRate = 1e-3, WarmupSteps = quick ? 0 : 20,
            Seed = BaseModel.Seed, LogEvery = quick ? 1 : 100,
        };
        log.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"adapters: LoRA r={Lora.R} alpha={Lora.Alpha} dropout={Lora.Dropout} on every linear layer; {(options.MaxSteps == 1 ? "1 step" : $"{options.MaxSteps} steps")} of {options.BatchSize} per task, lr {options.LearningRate}"));
        var after = new Dictionary<string, EvalResult>();
        foreach (var (name, train, dev) in tasks)
            after[name] = TrainTask(lm, tokenizer, name, train, dev, options, Path.Combine(output, name), log);
        // peft's layout for several adapters: runs/adapters/pos, runs/adapters/thing, … (peft generate --use NAME).
        lm.Adapters.Save(Path.Combine(output, "adapters"));

        // NeMo's other family: the same task learned with P-tuning, kept in a prompt table.
        log.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"prompt learning: P-tuning (peft's MLP encoder) with {PTuning.NumVirtualTokens} virtual tokens on {PromptTask} in NeMo's template " +
            $"\"{PromptFormat.Template}\" (5 + 5), lr {PromptLearningRate}"));
        var promptData = (Name: PromptTask,
            Train: DataOptions.Load(Path.Combine(dataDirectory, $"{PromptTask}.train.jsonl"), PromptFormat, tokenizer, maxLength),
            Dev: DataOptions.Load(Path.Combine(dataDirectory, $"{PromptTask}.dev.jsonl"), PromptFormat, tokenizer, maxLength));
        var promptOptions = options with { LearningRate = PromptLearningRate };
        var prompted = TrainPrompt(lm, tokenizer, promptData.Train, promptData.Dev, promptOptions, Path.Combine(output, PromptRun), log);
        var promptTable = Path.Combine(output, "prompts");
        if (Directory.Exists(promptTable)) Directory.Delete(promptTable, recursive: true);
        lm.Prompts.AddToTable(promptTable, PromptRun, PromptFormat.Template, tableName: PromptTask, splits: PromptFormat.VirtualTokenSplits);

        // IA3, on its own copy of the base: LoRA already sits on every projection of this one.
        log.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"IA3: learned vectors on every linear layer (inputs of the feed-forward output projection) on {Ia3Task}, lr {Ia3LearningRate}"));
        var ia3Data = tasks.Single(t => t.Name == Ia3Task);
        var ia3Options = options with { LearningRate = Ia3LearningRate };
        EvalResult scaled;
        using (var copy = (LanguageModel)StockModels.LoadGenerative(modelDirectory ?? baseDirectory))
        {
            scaled = TrainIa3(copy, tokenizer, ia3Data.Train, ia3Data.Dev, ia3Options, Path.Combine(output, Ia3Run), log);
            copy.Ia3.Save(Path.Combine(output, "ia3"), Ia3Run);
        }

        // The same adapters on the same architecture, untrained: what the base's pre-training is worth.
        Dictionary<string, EvalResult>? untrained = null;
        if (modelDirectory is null)
        {
            log.WriteLine("for comparison, the same adapters on the same architecture without pre-training:");
            manual_seed(BaseModel.Seed + 1);
            using var blank = new LlamaForCausalLM(LlamaConfig.FromJson(Config.ConfigJson.Parse(BaseModel.ConfigJson, "demo base config")));
            untrained = tasks.ToDictionary(t => t.Name, t => TrainTask(blank, tokenizer, t.Name, t.Train, t.Dev, options, null, log));
            untrained[PromptRun] = TrainPrompt(blank, tokenizer, promptData.Train, promptData.Dev, promptOptions, null, log);
            manual_seed(BaseModel.Seed + 1);
            using var blankForIa3 = new LlamaForCausalLM(LlamaConfig.FromJson(Config.ConfigJson.Parse(BaseModel.ConfigJson, "demo base config")));
            untrained[Ia3Run] = TrainIa3(blankForIa3, tokenizer, ia3Data.Train, ia3Data.Dev, ia3Options, null, log);
        }

        var console = InspectCommand.PlainConsole(log);
        var table = new Table { Border = TableBorder.Simple }
            .AddColumns("task", "held-out", "chance", "exact match: base", "base + adapter")
            .AddColumns(untrained is null ? [] : ["untrained base + adapter"])
            .AddColumns("loss: base", "base + adapter");
        foreach (var (name, _, dev) in tasks)
        {
            var chance = 1.0 / dev.Select(e => tokenizer.Decode(e.Answer)).Distinct().Count();
            table.AddRow([name, dev.Count.ToString(CultureInfo.InvariantCulture), Percent(chance), Percent(before[name].ExactMatch), Percent(after[name].ExactMatch),
                .. untrained is null ? Array.Empty<string>() : [Percent(untrained[name].ExactMatch)], Fixed(before[name].Loss), Fixed(after[name].Loss)]);
            if (name == PromptTask)
                table.AddRow([$"{name} (P-tuning)", dev.Count.ToString(CultureInfo.InvariantCulture), Percent(chance), Percent(before[name].ExactMatch), Percent(prompted.ExactMatch),
                    .. untrained is null ? Array.Empty<string>() : [Percent(untrained[PromptRun].ExactMatch)], Fixed(before[name].Loss), Fixed(prompted.Loss)]);
            if (name == Ia3Task)
                table.AddRow([$"{name} (IA3)", dev.Count.ToString(CultureInfo.InvariantCulture), Percent(chance), Percent(before[name].ExactMatch), Percent(scaled.ExactMatch),
                    .. untrained is null ? Array.Empty<string>() : [Percent(untrained[Ia3Run].ExactMatch)], Fixed(before[name].Loss), Fixed(scaled.Loss)]);
        }
        console.Write(table);

        var checksumAfter = BaseChecksum.ShortHex(lm);
        log.WriteLine($"base checksum after:  {checksumAfter} ({(checksumAfter == checksum ? "bit-identical: the base was not touched" : "CHANGED")})");

        // Each task with every adapter: an adapter helps its own task; the base row equals the "before" column.
        var cross = new Table { Border = TableBorder.Simple }.AddColumn("exact match").AddColumn("base");
        foreach (var (name, _, _) in tasks) cross.AddColumn($"{name} adapter");
        var mixedRows = tasks.SelectMany(t => t.Dev.Select(_ => t.Name)).ToList();
        lm.Adapters.Disable();
        var baseAgain = tasks.ToDictionary(t => t.Name, t => Evaluator.Run(lm, tokenizer, t.Dev, 32));
        lm.Adapters.Enable();
        foreach (var (name, _, dev) in tasks)
        {
            var row = new List<string> { name, Percent(baseAgain[name].ExactMatch) };
            foreach (var (adapter, _, _) in tasks)
            {
                lm.Adapters.SetActive(adapter);
                row.Add(Percent(Evaluator.Run(lm, tokenizer, dev, 32).ExactMatch));
            }
            cross.AddRow(row.ToArray());
        }
        console.Write(cross);
        var mixed = Evaluator.Run(lm, tokenizer, tasks.SelectMany(t => t.Dev).ToList(), 32, mixedRows);
        var separate = tasks.Sum(t => after[t.Name].ExactMatch * t.Dev.Count) / mixedRows.Count;
        log.WriteLine($"all tasks in one mixed batch, each row with its own adapter: exact match {Percent(mixed.ExactMatch)} " +
                      $"(each task alone: {Percent(separate)}); base after training, each task: {string.Join(", ", tasks.Select(t => $"{t.Name} {Percent(baseAgain[t.Name].ExactMatch)}"))}" +
                      $" (before: {string.Join(", ", tasks.Select(t => $"{t.Name} {Percent(before[t.Name].ExactMatch)}"))})");

        File.WriteAllText(Path.Combine(output, "summary.json"), JsonSerializer.Serialize(new
        {
            base_model = baseDirectory,
            base_checksum_before = checksum,
            base_checksum_after = checksumAfter,
            tasks = tasks.Select(t => new
            {
                task = t.Name, held_out = t.Dev.Count,
                exact_match_before = before[t.Name].ExactMatch, exact_match_after = after[t.Name].ExactMatch,
                exact_match_untrained_base_with_adapter = untrained?[t.Name].ExactMatch,
                loss_before = before[t.Name].Loss, loss_after = after[t.Name].Loss,
            }),
            prompt_learning = new
            {
                task = PromptTask, method = "P_TUNING", virtual_tokens = PTuning.NumVirtualTokens,
                exact_match_after = prompted.ExactMatch, loss_after = prompted.Loss,
                exact_match_untrained_base_with_prompt = untrained?[PromptRun].ExactMatch,
            },
            ia3 = new
            {
                task = Ia3Task, method = "IA3", exact_match_after = scaled.ExactMatch, loss_after = scaled.Loss,
                exact_match_untrained_base_with_ia3 = untrained?[Ia3Run].ExactMatch,
            },
            mixed_batch_exact_match = mixed.ExactMatch,
        }, new JsonSerializerOptions { WriteIndented = true }));
        var baseEntry = modelDirectory is null ? (quick ? "base-quick/, " : "base/, ") : "";
        log.WriteLine($"wrote {output}: data/, {baseEntry}adapters/ ({string.Join(", ", DemoData.Tasks)}), prompts/ (a prompt table: {PromptTask}), " +
                      $"ia3/ (peft's IA3 folder: {Ia3Task}), {string.Join("/, ", DemoData.Tasks.Append(PromptRun).Append(Ia3Run))}/ (metrics.jsonl, loss.png), summary.json");
        var task = tasks[0].Name;
        var example = JsonlDataset.Read(Path.Combine(dataDirectory, $"{task}.dev.jsonl"), DataFormat.InputOutput)[0];
        log.WriteLine($"try a held-out question (reference answer: {example.Answer}):");
        log.WriteLine($"  ./scripts/peft generate --model {baseDirectory} --adapter {Path.Combine(output, "adapters")} --use {task} --prompt \"{example.Fields["input"]}\"");
        var promptExample = JsonlDataset.Read(Path.Combine(dataDirectory, $"{PromptTask}.dev.jsonl"), DataFormat.InputOutput)[0];
        log.WriteLine($"or the P-tuning task, which runs in its template (reference answer: {promptExample.Answer}):");
        log.WriteLine($"  ./scripts/peft generate --model {baseDirectory} --adapter {promptTable} --use {PromptTask} --prompt \"{promptExample.Fields["input"]}\"");
        return 0;
    }

    /// <summary>--out is new, empty or an earlier demo run: the demo replaces its own folders there, nothing else.</summary>
    private static void CheckOutput(string output, string? modelDirectory)
    {
        if (File.Exists(output)) throw new PeftDslException($"--out {output} is a file; give a folder");
        if (modelDirectory is not null)
        {
            if (!Directory.Exists(modelDirectory)) throw new PeftDslException($"--model {modelDirectory}: folder not found");
            var model = Path.GetFullPath(modelDirectory).TrimEnd('/') + "/";
            var full = Path.GetFullPath(output).TrimEnd('/') + "/";
            if (full.StartsWith(model, StringComparison.Ordinal) || model.StartsWith(full, StringComparison.Ordinal))
                throw new PeftDslException($"--out {output} is or contains the model folder {modelDirectory}, or lies inside it; write the run elsewhere");
        }
        if (!Directory.Exists(output)) return;
        if (Directory.EnumerateFileSystemEntries(output).Select(Path.GetFileName).FirstOrDefault(e => !RunEntries.Contains(e)) is { } foreign)
            throw new PeftDslException($"--out {output} holds {foreign}, which is not part of a peft demo run; choose a new or empty folder");
    }

    private const double PromptLearningRate = 3e-2;

    /// <summary>Adds IA3 vectors on every linear layer of <paramref name="lm"/> (peft's feed-forward rule for the family),
    /// trains them and returns the held-out evaluation.</summary>
    private static EvalResult TrainIa3(LanguageModel lm, TextTokenizer tokenizer, IReadOnlyList<TokenizedExample> train,
        IReadOnlyList<TokenizedExample> dev, TrainerOptions options, string? folder, TextWriter log)
    {
        manual_seed(BaseModel.Seed);
        var names = lm.Adapters.Linears().Select(l => l.Path.Split('.')[^1]).Distinct().ToList();
        lm.Ia3.Add(Ia3Run, new Peft.Ia3.Ia3Config { TargetModules = names }, "demo");
        return Train(lm, tokenizer, Ia3Run, train, dev, options, folder, log);
    }

    /// <summary>Adds the P-tuning task (every LoRA adapter frozen and inactive), trains it, freezes its encoder into
    /// its rows, and returns its held-out evaluation.</summary>
    private static EvalResult TrainPrompt(LanguageModel lm, TextTokenizer tokenizer, IReadOnlyList<TokenizedExample> train,
        IReadOnlyList<TokenizedExample> dev, TrainerOptions options, string? folder, TextWriter log)
    {
        manual_seed(BaseModel.Seed);
        foreach (var adapter in lm.Adapters.Names) lm.Adapters.SetTrainable(adapter, false);
        var active = lm.Adapters.Active.ToArray();
        lm.Adapters.SetActive();
        // Its own name: a prompt task and a LoRA adapter never share one (the table stores it as "pos").
        lm.Prompts.Add(PromptRun, PTuning, source: "demo");
        try
        {
            var result = Train(lm, tokenizer, PromptRun, train, dev, options, folder, log);
            lm.Prompts.Freeze(PromptRun);
            lm.Prompts.SetTrainable(PromptRun, false);
            return result;
        }
        finally
        {
            lm.Prompts.SetActive(null);
            lm.Adapters.SetActive(active);
        }
    }

    /// <summary>Adds the task's LoRA adapter (the others frozen), trains it, and returns its held-out evaluation; with a
    /// folder, writes metrics.jsonl and loss.png there.</summary>
    private static EvalResult TrainTask(LanguageModel lm, TextTokenizer tokenizer, string name, IReadOnlyList<TokenizedExample> train,
        IReadOnlyList<TokenizedExample> dev, TrainerOptions options, string? folder, TextWriter log)
    {
        manual_seed(BaseModel.Seed);
        lm.Adapters.Add(name, Lora, "demo");
        foreach (var other in lm.Adapters.Names.Where(n => n != name)) lm.Adapters.SetTrainable(other, false);
        lm.Adapters.SetActive(name);
        var result = Train(lm, tokenizer, name, train, dev, options, folder, log);
        lm.Adapters.SetTrainable(name, false);
        return result;
    }

    /// <summary>Trains what is trainable and returns the held-out evaluation; with a folder, writes metrics.jsonl and
    /// loss.png there.</summary>
    private static EvalResult Train(LanguageModel lm, TextTokenizer tokenizer, string name, IReadOnlyList<TokenizedExample> train,
        IReadOnlyList<TokenizedExample> dev, TrainerOptions options, string? folder, TextWriter log)
    {
        var trainer = new Trainer(lm, tokenizer, train, dev, options, null);
        trainer.Progress += e => { if (e is StepEvent s && s.Step % options.LogEvery == 0) log.WriteLine($"  {name}: {TrainingProgress.Line(e)}"); };
        EvalResult result;
        if (folder is null) result = trainer.Run().LastEval!;
        else
        {
            if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
            Directory.CreateDirectory(folder);
            using (var metrics = new MetricsLog(Path.Combine(folder, "metrics.jsonl")))
            {
                trainer.Progress += metrics.Write;
                result = trainer.Run().LastEval!;
            }
            LossPlot.Write(Path.Combine(folder, "metrics.jsonl"), Path.Combine(folder, "loss.png"));
        }
        return result;
    }

    private static string QuickBase(string directory, string data, string fingerprint, TextWriter log) =>
        BaseModel.Ensure(directory, data, fingerprint + "-quick", log, quick: true);

    private static string Percent(double x) => x.ToString("P1", CultureInfo.InvariantCulture);

    private static string Fixed(double x) => x.ToString("F3", CultureInfo.InvariantCulture);
}
