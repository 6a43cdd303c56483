using System.CommandLine;
using System.Globalization;
using System.Runtime.InteropServices;
using PeftDsl.Checkpoints;
using PeftDsl.Data;
using PeftDsl.Errors;
using PeftDsl.Models;
using PeftDsl.Peft;
using PeftDsl.Peft.Lora;
using PeftDsl.Runtime;
using PeftDsl.Tokenization;
using PeftDsl.Training;
using Spectre.Console;
using static TorchSharp.torch;

namespace PeftDsl.Cli.Commands;

/// <summary>
/// <c>peft train --model DIR --data FILE --out DIR</c>: trains a LoRA adapter and writes, into --out, the adapter in
/// peft's format, <c>metrics.jsonl</c>, <c>loss.png</c> and <c>checkpoint/</c> (for --resume).
/// </summary>
public static class TrainCommand
{
    /// <summary>Builds <c>peft train</c> with its options (model, data, <c>--out</c>, <c>--method</c> and each method's options,
    /// the schedule, evaluation, checkpoints, <c>--resume</c>/<c>--overwrite</c>); the exit code is that of
    /// <c>TrainRun.Execute</c>, or 2 for bad input.</summary>
    public static Command Create()
    {
        var model = new Option<DirectoryInfo>("--model") { Description = "Hugging Face checkpoint folder (GPT-2, Llama, GPT-NeoX, Mistral, Qwen2, Qwen3, Gemma 2, Gemma 3, Phi-3, T5, mT5)", Required = true };
        var data = new Option<FileInfo>("--data") { Description = "Training examples, JSONL", Required = true };
        var eval = new Option<FileInfo?>("--eval") { Description = "Held-out examples, JSONL: loss, perplexity and exact match" };
        var output = new Option<DirectoryInfo>("--out") { Description = "Folder for the adapter, metrics.jsonl, loss.png and checkpoint/; new or empty unless --overwrite or --resume", Required = true };
        var method = new Option<string>("--method") { Description = "PEFT method: lora, ia3, adapter (bottleneck), prompt (prompt tuning), ptuning or prefix; several together separated by commas (ptuning,lora)", DefaultValueFactory = _ => "lora" };
        var adapterDim = new Option<int>("--adapter-dim") { Description = "adapter: the bottleneck width", DefaultValueFactory = _ => 32 };
        var adapterActivation = new Option<string>("--adapter-activation") { Description = "adapter: swish, gelu, relu or identity", DefaultValueFactory = _ => "swish" };
        var adapterNorm = new Option<string>("--adapter-norm") { Description = "adapter: the adapter's layer norm: pre, post or none", DefaultValueFactory = _ => "pre" };
        var adapterSites = new Option<string[]>("--adapter-sites") { Description = "adapter: sites (attention_adapter, mlp_adapter, cross_attention_adapter; default all)", AllowMultipleArgumentsPerToken = true };
        var adapterPlacement = new Option<string>("--adapter-placement") { Description = "adapter: sequential (after the sublayer, Houlsby), parallel (beside it, on its input) or nemo (after it, before its output bias, as NeMo's Megatron layers)", DefaultValueFactory = _ => "sequential" };
        var adapterTie = new Option<bool>("--adapter-tie") { Description = "adapter: one adapter per site name shared by every block (NeMo's weight_tying)" };
        var feedforward = new Option<string[]>("--feedforward") { Description = "ia3: the targets whose input is scaled (default: peft's for the model)", AllowMultipleArgumentsPerToken = true };
        var ia3Placement = new Option<string>("--ia3-placement") { Description = "ia3: peft (whole target projections) or nemo (keys and values after the QKV split, the MLP activation)", DefaultValueFactory = _ => "peft" };
        var lora = new LoraOptions();
        var prompt = new PromptOptions();
        var steps = new Option<int?>("--steps") { Description = "Optimizer steps (default: --epochs over the data)" };
        var epochs = new Option<int>("--epochs") { Description = "Passes over the data when --steps is not given", DefaultValueFactory = _ => 1 };
        var batch = new Option<int>("--batch") { Description = "Examples per micro-batch", DefaultValueFactory = _ => 8 };
        var accumulate = new Option<int>("--accumulate") { Description = "Micro-batches per optimizer step", DefaultValueFactory = _ => 1 };
        var lr = new Option<double>("--lr") { Description = "Peak learning rate", DefaultValueFactory = _ => 2e-4 };
        var warmup = new Option<int>("--warmup") { Description = "Warmup steps", DefaultValueFactory = _ => 0 };
        var schedule = new Option<string>("--schedule") { Description = "Decay after warmup: cosine, linear, constant", DefaultValueFactory = _ => "cosine" };
        var weightDecay = new Option<double>("--weight-decay") { Description = "AdamW weight decay (biases, norms, IA3 vectors and DoRA magnitudes are spared)", DefaultValueFactory = _ => 0.0 };
        var baseDropout = new Option<string>("--base-dropout") { Description = "The base model's own dropout in training: config (config.json's rates, as transformers applies them) or one probability for all of them (0: off)", DefaultValueFactory = _ => "config" };
        var clip = new Option<double>("--clip") { Description = "Gradient-norm limit (0: off)", DefaultValueFactory = _ => 1.0 };
        var seed = new Option<int>("--seed") { Description = "Seed: the same seed gives the same run on the CPU", DefaultValueFactory = _ => 1234 };
        var logEvery = new Option<int>("--log-every") { Description = "Steps between log lines", DefaultValueFactory = _ => 10 };
        var evalEvery = new Option<int>("--eval-every") { Description = "Steps between evaluations (0: at the end)", DefaultValueFactory = _ => 0 };
        var saveEvery = new Option<int>("--save-every") { Description = "Steps between checkpoints (0: with each evaluation and at the end)", DefaultValueFactory = _ => 0 };
        var patience = new Option<int>("--patience") { Description = "Early stop after this many evaluations without improvement (0: off)", DefaultValueFactory = _ => 0 };
        var metric = new Option<string>("--metric") { Description = "What early stopping follows: loss or exact_match", DefaultValueFactory = _ => "loss" };
        var tfew = new Option<bool>("--tfew") { Description = "T-Few: on multiple-choice examples ({\"input\", \"choices\", \"label\"}) add the length-normalised and unlikelihood losses over the choices" };
        var packing = new Option<bool>("--packing") { Description = "Pack several short examples into each row of a batch (decoder-only models): positions restart and attention stays within each example, so the loss is the same with less padding" };
        var checkpointing = new Option<bool>("--gradient-checkpointing") { Description = "Recompute each transformer block in backward instead of keeping its activations: less memory, about one more forward per step, the same gradients (not with prefix tuning)" };
        var fullLoss = new Option<bool>("--full-loss") { Description = "Take the loss on prompt tokens too (default: answer tokens only, NeMo's answer_only_loss)" };
        var task = new Option<string?>("--task") { Description = "prompt/ptuning/prefix: also add the trained task to --table under this name" };
        var table = new Option<DirectoryInfo?>("--table") { Description = "Multi-task prompt table folder that --task is added to (created if new; other tasks stay as they are)" };
        var resume = new Option<bool>("--resume") { Description = "Continue from --out/checkpoint exactly where it stopped" };
        var overwrite = new Option<bool>("--overwrite") { Description = "Replace what --out holds" };
        var command = new Command("train", Program.Example("Train a LoRA adapter on JSONL examples",
            "peft train --model models/gpt2 --data train.jsonl --eval dev.jsonl --out runs/mine --r 8 --epochs 3"))
        {
            model, data, eval, output, method, steps, epochs, batch, accumulate, lr, warmup, schedule, weightDecay, baseDropout, clip, seed,
            logEvery, evalEvery, saveEvery, patience, metric, fullLoss, packing, checkpointing, tfew, task, table, resume, overwrite, feedforward, ia3Placement,
            adapterDim, adapterActivation, adapterNorm, adapterSites, adapterPlacement, adapterTie,
        };
        lora.AddTo(command);
        prompt.AddTo(command);
        var dataOptions = new DataOptions();
        dataOptions.AddTo(command);
        var placement = new ModelOptions();
        placement.AddTo(command);
        command.SetAction(parse => Program.Guard(() =>
        {
            if (parse.GetValue(eval) is null)
                foreach (var needsEval in new Option[] { evalEvery, patience, metric })
                    if (parse.GetResult(needsEval) is { Implicit: false })
                        throw new PeftDslException($"{needsEval.Name} follows evaluations, which need --eval FILE");
            var methodNames = parse.GetValue(method)!.Split(',', StringSplitOptions.TrimEntries);
            if (methodNames.FirstOrDefault(m => !KnownMethods.Contains(m)) is { } unknownMethod)
                throw new PeftDslException($"--method {unknownMethod}: not {string.Join(", ", KnownMethods.SkipLast(1))} or {KnownMethods[^1]}" +
                                           (methodNames.Length > 1 ? " (a combination lists methods separated by commas: ptuning,lora)" : ""));
            if (methodNames.GroupBy(m => m).FirstOrDefault(g => g.Count() > 1) is { } twice)
                throw new PeftDslException($"--method names {twice.Key} twice");
            if (methodNames.Count(m => m is "prompt" or "ptuning" or "prefix") > 1)
                throw new PeftDslException($"--method {parse.GetValue(method)}: a model runs one virtual prompt; combine prompt, ptuning or prefix with other methods, not with each other");
            var parts = methodNames.Select(name => (TrainMethod)(name switch
            {
                "lora" => (TrainMethod)new LoraMethod(lora.Config(parse)),
                "ia3" => new Ia3Method(Ia3Config(parse, lora, feedforward, ia3Placement, targetsAreLora: methodNames.Contains("lora"))),
                "adapter" => new BottleneckMethod(new Peft.Adapters.BottleneckConfig
                {
                    AdapterDim = parse.GetValue(adapterDim),
                    Activation = parse.GetValue(adapterActivation) switch
                    {
                        "swish" => Peft.Adapters.BottleneckActivation.Swish, "gelu" => Peft.Adapters.BottleneckActivation.Gelu,
                        "relu" => Peft.Adapters.BottleneckActivation.Relu, "identity" => Peft.Adapters.BottleneckActivation.Identity,
                        var a => throw new PeftDslException($"--adapter-activation: '{a}' is not swish, gelu, relu or identity"),
                    },
                    Norm = parse.GetValue(adapterNorm) switch
                    {
                        "pre" => Peft.Adapters.BottleneckNorm.Pre, "post" => Peft.Adapters.BottleneckNorm.Post, "none" => Peft.Adapters.BottleneckNorm.None,
                        var n => throw new PeftDslException($"--adapter-norm: '{n}' is not pre, post or none"),
                    },
                    Sites = (parse.GetValue(adapterSites) ?? []).SelectMany(s => s.Split([',', ' '], StringSplitOptions.RemoveEmptyEntries)).ToList() is { Count: > 0 } sites ? sites : null,
                    Placement = parse.GetValue(adapterPlacement) switch
                    {
                        "sequential" => Peft.Adapters.BottleneckPlacement.Sequential, "parallel" => Peft.Adapters.BottleneckPlacement.Parallel,
                        "nemo" => Peft.Adapters.BottleneckPlacement.Nemo,
                        var p => throw new PeftDslException($"--adapter-placement: '{p}' is not sequential, parallel or nemo"),
                    },
                    TieWeights = parse.GetValue(adapterTie),
                }.Validate("--adapter-dim")),
                "prompt" => new PromptLearningMethod(prompt.Config(parse, Peft.Prompts.PromptMethod.PromptTuning)),
                "ptuning" => new PromptLearningMethod(prompt.Config(parse, Peft.Prompts.PromptMethod.PTuning)),
                _ => new PromptLearningMethod(prompt.Config(parse, Peft.Prompts.PromptMethod.PrefixTuning)),
            } with { Name = methodNames.Length == 1 ? TrainRun.Adapter : name })).ToList();
            var chosen = parts.Count == 1 ? parts[0] : new CombinedMethod(parts);
            var promptMethod = chosen.PromptPart is not null;
            var tableEntry = (parse.GetValue(task), parse.GetValue(table)?.FullName) switch
            {
                (null, null) => null,
                ({ } name, { } folder) when promptMethod => new TableEntry(name, folder),
                ({ }, { }) => throw new PeftDslException($"--task and --table add a prompt-learning task to a table; --method {parse.GetValue(method)} has none"),
                (null, _) => throw new PeftDslException("--table needs --task NAME, the task's name in the table"),
                (_, null) => throw new PeftDslException("--task needs --table DIR, the prompt table to add it to"),
            };
            if (!promptMethod && prompt.Given(parse).FirstOrDefault() is { } promptOption)
                throw new PeftDslException($"{promptOption} applies to --method prompt, ptuning or prefix, not {parse.GetValue(method)}");
            if (!methodNames.Contains("ia3") && new Option[] { feedforward, ia3Placement }.FirstOrDefault(o => parse.GetResult(o) is { Implicit: false }) is { } ia3Option)
                throw new PeftDslException($"{ia3Option.Name} applies to --method ia3");
            if (!methodNames.Contains("adapter") && new Option[] { adapterDim, adapterActivation, adapterNorm, adapterSites, adapterPlacement, adapterTie }.FirstOrDefault(o => parse.GetResult(o) is { Implicit: false }) is { } adapterOption)
                throw new PeftDslException($"{adapterOption.Name} applies to --method adapter");
            if (!methodNames.Contains("lora") && lora.Given(parse).FirstOrDefault(o => !(methodNames.Contains("ia3") && o == "--targets")) is { } loraOption)
                throw new PeftDslException($"{loraOption} is a LoRA option; --method {parse.GetValue(method)} does not take it");
            var options = new TrainerOptions
            {
                MaxSteps = parse.GetValue(steps),
                Epochs = parse.GetValue(epochs),
                BatchSize = parse.GetValue(batch),
                Accumulation = parse.GetValue(accumulate),
                LearningRate = parse.GetValue(lr),
                WarmupSteps = parse.GetValue(warmup),
                Decay = parse.GetValue(schedule) switch
                {
                    "cosine" => DecayKind.Cosine,
                    "linear" => DecayKind.Linear,
                    "constant" => DecayKind.Constant,
                    var other => throw new PeftDslException($"--schedule: '{other}' is not cosine, linear or constant"),
                },
                WeightDecay = parse.GetValue(weightDecay),
                ClipNorm = parse.GetValue(clip),
                BaseDropout = BaseDropoutValue(parse.GetValue(baseDropout)!),
                Seed = parse.GetValue(seed),
                LogEvery = parse.GetValue(logEvery),
                EvalEvery = parse.GetValue(evalEvery),
                SaveEvery = parse.GetValue(saveEvery),
                Patience = parse.GetValue(patience),
                Metric = parse.GetValue(metric) switch
                {
                    "loss" => EvalMetric.Loss,
                    "exact_match" => EvalMetric.ExactMatch,
                    var other => throw new PeftDslException($"--metric: '{other}' is not loss or exact_match"),
                },
                AnswerOnlyLoss = !parse.GetValue(fullLoss),
                TFewLosses = parse.GetValue(tfew),
                Packing = parse.GetValue(packing),
                GradientCheckpointing = parse.GetValue(checkpointing),
            }.Validate();
            var run = new TrainRun(parse.GetValue(model)!.FullName, parse.GetValue(data)!.FullName, parse.GetValue(eval)?.FullName,
                parse.GetValue(output)!.FullName, chosen, options, parse.GetValue(resume), parse.GetValue(overwrite)) { Table = tableEntry };
            return run.Execute(parse, dataOptions, placement.Read(parse), Console.Out);
        }));
        return command;
    }

    private static readonly string[] KnownMethods = ["lora", "ia3", "adapter", "prompt", "ptuning", "prefix"];

    /// <summary><c>--base-dropout</c>: <c>config</c> (null) or one probability in [0, 1].</summary>
    internal static double? BaseDropoutValue(string text) =>
        text == "config" ? null
        : double.TryParse(text, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var p) && p >= 0 && p <= 1 ? p
        : throw new PeftDslException($"--base-dropout: '{text}' is not config or a probability in [0, 1]");

    /// <summary>IA3's targets (--targets, shared with LoRA unless LoRA is trained too) and feed-forward modules, or
    /// NeMo's placement, which takes its sites from the model.</summary>
    private static Peft.Ia3.Ia3Config Ia3Config(ParseResult parse, LoraOptions lora, Option<string[]> feedforward, Option<string> placement, bool targetsAreLora)
    {
        var (targets, pattern) = !targetsAreLora && parse.GetResult(lora.Targets) is { Implicit: false }
            ? Peft.Lora.LoraTargets.Parse(parse.GetValue(lora.Targets) ?? [], "--targets") : (null, null);
        var (ff, ffPattern) = parse.GetResult(feedforward) is { Implicit: false }
            ? Peft.Lora.LoraTargets.Parse(parse.GetValue(feedforward) ?? [], "--feedforward") : (null, null);
        var named = targets is not null || pattern is not null;
        if ((ff is not null || ffPattern is not null) && !named)
            throw new PeftDslException(targetsAreLora ? "--feedforward: with --method lora,ia3, --targets are LoRA's and IA3 takes its default targets" : "--feedforward needs --targets (the feed-forward modules are among the targets)");
        var nemo = parse.GetValue(placement) switch
        {
            "peft" => false,
            "nemo" => true,
            var other => throw new PeftDslException($"--ia3-placement: '{other}' is not peft or nemo"),
        };
        if (nemo && (named || parse.GetResult(feedforward) is { Implicit: false }))
            throw new PeftDslException("--ia3-placement nemo takes its sites from the model (keys, values, the MLP activation); leave out --targets and --feedforward");
        return new Peft.Ia3.Ia3Config
        {
            TargetModules = targets,
            TargetPattern = pattern,
            FeedforwardModules = ff,
            FeedforwardPattern = ffPattern,
            Placement = nemo ? Peft.Ia3.Ia3Placement.Nemo : Peft.Ia3.Ia3Placement.Peft,
        }.Validate("--targets/--feedforward");
    }
}

/// <summary>One <c>peft train</c> invocation, after its options were checked.</summary>
public sealed record TrainRun(string Model, string Data, string? Eval, string Output, TrainMethod Method, TrainerOptions Options,
    bool Resume, bool Overwrite)
{
    /// <summary>The adapter name of a single-method run, peft's <c>default</c>; a combination names each part after its method.</summary>
    public const string Adapter = "default";

    /// <summary>Where the trained prompt task also goes: NeMo's prompt table.</summary>
    public TableEntry? Table { get; init; }

    /// <summary>What a run writes into --out: the only entries --overwrite may replace.</summary>
    private static readonly string[] RunEntries =
        ["adapter_config.json", "adapter_model.safetensors", "metrics.jsonl", "loss.png", "checkpoint",
         "lora", "ia3", "adapter", "prompt", "ptuning", "prefix"];   // a combination's adapter folders

    /// <summary>Checks <c>--out</c> and the data, loads the model, trains, and writes the adapter, <c>metrics.jsonl</c>,
    /// <c>loss.png</c> and <c>checkpoint/</c> into <c>--out</c>, logging progress to <paramref name="log"/>. Returns 0 when the
    /// run ends, 1 when a signal stopped it (continue with <c>--resume</c>); bad input throws a bad-input error.</summary>
    public int Execute(ParseResult parse, DataOptions data, ModelLoadOptions placement, TextWriter log)
    {
        // Under mpiexec.mpich (or srun) this process is one rank of a data-parallel job: rank 0 checks and writes --out
        // and logs; the other ranks train their share and write nothing (docs/distributed.md).
        return JobRanks.Run(ranks => Execute(parse, data, placement, ranks.Rank == 0 ? log : TextWriter.Null, ranks));
    }

    private int Execute(ParseResult parse, DataOptions data, ModelLoadOptions placement, TextWriter log, Distributed.ICommunicator ranks)
    {
        var writes = ranks.Rank == 0;
        if (writes)
        {
            AtomicFolder.Recover(Path.Combine(Output, "checkpoint"));   // a run killed between a save's two renames left it beside its name
            CheckOutput();
        }
        DataOptions.RequireFiles(Data, Eval);
        if (Eval is not null && JsonlDataset.HoldsConversations(Eval) != JsonlDataset.HoldsConversations(Data))
            throw new PeftDslException($"--data {Data} and --eval {Eval} hold different kinds of records (conversations and prompt/answer records); " +
                                       "evaluate on records of the kind trained on");
        if (writes && Table is { } t) t.CheckFree();
        if (Options.GradientCheckpointing && Method.PromptPart is { Prompt.Method: Peft.Prompts.PromptMethod.PrefixTuning })
            throw new PeftDslException("--gradient-checkpointing cannot be combined with --method prefix: the prefix's keys and values reach every layer through the KV cache, which a recomputed block would read twice");
        if (Options.Packing && Method.PromptPart is not null)
            throw new PeftDslException("--packing cannot be combined with prompt learning: the virtual tokens would be prepended to a packed row, not to each example");
        var format = data.Format(parse);
        if (format.Markers > 0 || format.VirtualTokenSplits is not null)
        {
            if (Method.PromptPart is not { Prompt.Method: not Peft.Prompts.PromptMethod.PrefixTuning })
                throw new PeftDslException("the template's <|VIRTUAL_PROMPT_k|> markers (and --virtual-token-splits) place virtual tokens: they need --method prompt or ptuning");
            format = format.ForVirtualTokens(Method.VirtualTokens);
        }
        // Marked virtual tokens sit inside each example; otherwise they come in front of it.
        var maxLength = data.Length(parse, Model, format.Markers > 0 ? 0 : Method.VirtualTokens);
        var options = Options with { RunSettings = Settings(format, maxLength, parse.GetValue(data.ChatTemplateFile)) };
        if (Resume) Trainer.CheckResumeSettings(Path.Combine(Output, "checkpoint"), options);
        using var model = (LanguageModel)StockModels.LoadGenerative(Model, placement);
        if (Options.Packing && model is Seq2SeqLanguageModel)
            throw new PeftDslException($"--packing is for decoder-only models; {Model} is an encoder-decoder ({model.ModelType}), whose encoder and decoder rows pack differently");
        var tokenizer = data.LoadTokenizer(parse, Model, model);
        var chat = data.ChatTemplates(parse, Model, tokenizer);
        var train = data.Load(parse, Data, format, tokenizer, maxLength, chat, model.VocabSize);
        var held = Eval is null ? null : data.Load(parse, Eval, format, tokenizer, maxLength, chat, model.VocabSize);
        if (Options.TFewLosses && train.All(e => e.Choices is null))
            throw new PeftDslException($"--tfew: {Data} has no multiple-choice examples (records with \"choices\" and \"label\")");
        manual_seed(Options.Seed);   // the adapter's initial weights are part of the run's seed
        if (Resume) Method.Resume(model, tokenizer, Path.Combine(Output, "checkpoint"));
        else Method.Add(model, tokenizer);
        // On GPUs the gradient all-reduce runs over NCCL (the control messages stay on MPI).
        var onDevice = Distributed.Communicator.ForDevice(ranks, model.parameters().First().device);
        using var nccl = onDevice == ranks ? null : onDevice;
        ranks = onDevice;
        var trainable = model.TrainableParameters().Sum(p => p.Parameter.NumberOfElements);
        var all = model.AllParameters().Sum(p => p.Parameter.NumberOfElements);
        log.WriteLine($"model {Model} ({model.ModelType}), {Method.Describe}: {trainable:N0} trainable of {all:N0} parameters ({100.0 * trainable / all:F2}%)");
        if (ranks.Size > 1 || nccl is not null)
            log.WriteLine($"ranks: {ranks.Size} ({(nccl is null ? "MPI" : "NCCL for the gradients")}); each takes 1/{ranks.Size} of every batch, " +
                          "and the gradients are summed once per step");
        if (!writes)
        {
            // The other ranks read --out (to resume) but write nothing into it.
            var shared = new Trainer(model, tokenizer, train, held, options, null, ranks);
            using var signal = new StopOnSignal();
            var done = shared.Run(Resume ? Path.Combine(Output, "checkpoint") : null, signal.Token);
            return done.StopReason == "stopped" ? Program.InternalError : 0;
        }

        // --overwrite trains beside the old run and swaps it in only when this one ends well: a run that fails
        // (a NaN loss, a full disk) leaves the previous adapter as it was.
        var replacing = Overwrite && Directory.Exists(Output) && Directory.EnumerateFileSystemEntries(Output).Any();
        TrainingResult? result = null;
        if (replacing) AtomicFolder.Write(Output, staging => result = TrainInto(staging, model, tokenizer, train, held, options, log, ranks), keepOthers: false);
        else
        {
            Directory.CreateDirectory(Output);
            result = TrainInto(Output, model, tokenizer, train, held, options, log, ranks);
        }
        var adapterFiles = Method is CombinedMethod combined
            ? string.Join(", ", combined.Parts.Select(p => p.Name + "/")) + " (an adapter folder each)"
            : "adapter_config.json, adapter_model.safetensors";
        var wrote = $"wrote {Output}: {adapterFiles}, metrics.jsonl, loss.png, checkpoint/";
        if (result!.LastEval is { } e)
            log.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"eval: loss {e.Loss:F4}, perplexity {e.Perplexity:F2}, exact match {e.ExactMatch:P1} of {e.Examples}") +
                (e.RankAccuracy is { } rank ? string.Create(CultureInfo.InvariantCulture, $", rank accuracy {rank:P1}") : ""));
        if (result.StopReason == "stopped")
        {
            log.WriteLine($"stopped at step {result.Steps} of {result.TotalSteps}; {wrote}");
            Console.Error.WriteLine($"stopped: continue with the same command and --resume instead of{(Overwrite ? " --overwrite" : "")} a new run");
            return Program.InternalError;
        }
        log.WriteLine($"{result.StopReason} after {result.Steps} steps; {wrote}");
        if (Table is { } entry)
        {
            model.Prompts.AddToTable(entry.Folder, Method.PromptPart!.Name, format.Template, entry.Task, format.VirtualTokenSplits);
            log.WriteLine($"added task '{entry.Task}' to the prompt table {entry.Folder}");
        }
        return 0;
    }

    private TrainingResult TrainInto(string folder, LanguageModel model, TextTokenizer tokenizer, IReadOnlyList<TokenizedExample> train,
        IReadOnlyList<TokenizedExample>? held, TrainerOptions options, TextWriter log, Distributed.ICommunicator ranks)
    {
        var checkpoint = Path.Combine(folder, "checkpoint");
        var trainer = new Trainer(model, tokenizer, train, held, options, checkpoint, ranks);
        log.WriteLine($"data {Data}: {train.Count} examples{(held is null ? "" : $", eval {Eval}: {held.Count}")}; " +
                      $"{Plural(trainer.TotalSteps, "step")} of {Options.BatchSize}×{Options.Accumulation}");
        var resumedAt = Resume ? TrainingCheckpoint.ReadState(checkpoint).Step : 0;
        if (Resume) log.WriteLine($"resuming at step {resumedAt} from {checkpoint}");

        TrainingResult result;
        using (var stop = new StopOnSignal())
        using (var metrics = new MetricsLog(Path.Combine(folder, "metrics.jsonl"), resumedAt))
        {
            trainer.Progress += metrics.Write;
            try
            {
                result = TrainingProgress.Show(trainer, log, () => trainer.Run(Resume ? checkpoint : null, stop.Token));
            }
            catch (TrainingDivergedException e)
            {
                throw new PeftDslException(e.Message + (folder != Output ? $"; {Output} is left as it was"
                    : TrainingCheckpoint.Exists(checkpoint) ? $"; the checkpoint at step {TrainingCheckpoint.ReadState(checkpoint).Step} in {checkpoint} is kept"
                    : ""), e);
            }
        }
        Method.WriteAdapter(model, folder);   // file by file, each atomic: the run folder itself is not swapped
        LossPlot.Write(Path.Combine(folder, "metrics.jsonl"), Path.Combine(folder, "loss.png"));
        return result;
    }

    /// <summary>The options a resume must repeat, besides the trainer's own: the adapter's and the data's.</summary>
    private Dictionary<string, string> Settings(DataFormat format, int maxLength, FileInfo? chatTemplate)
    {
        var settings = new Dictionary<string, string>(Method.Settings)
        {
            ["--template"] = format.Template ?? "(the input field)",
            ["--answer-field"] = format.AnswerField,
            ["--truncate-field"] = format.TruncateField ?? "(none)",
            ["--max-length"] = maxLength.ToString(CultureInfo.InvariantCulture),
        };
        // Recorded only when given, so runs without markers keep the settings of earlier checkpoints.
        if (format.VirtualTokenSplits is { } splits) settings["--virtual-token-splits"] = string.Join(",", splits);
        // By content: a resumed run must render its conversations as the first part did, wherever the file now is.
        if (chatTemplate is not null)
            settings["--chat-template"] = "sha256:" + Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(chatTemplate.FullName)))[..16];
        return settings;
    }

    private static string Plural(int n, string what) => n == 1 ? $"1 {what}" : $"{n:N0} {what}s";

    /// <summary>Outputs are never overwritten by surprise: --out is new or empty, or --overwrite of an earlier run,
    /// or --resume with a checkpoint to resume.</summary>
    private void CheckOutput()
    {
        var checkpoint = Path.Combine(Output, "checkpoint");
        if (File.Exists(Output)) throw new PeftDslException($"--out {Output} is a file");
        if (Resume && Overwrite) throw new PeftDslException("--resume continues --out, --overwrite replaces it: choose one");
        if (Resume)
        {
            if (!TrainingCheckpoint.Exists(checkpoint)) throw new PeftDslException($"--resume: {checkpoint} holds no checkpoint to resume");
            return;
        }
        var entries = Directory.Exists(Output) ? Directory.EnumerateFileSystemEntries(Output).Select(Path.GetFileName).ToList() : [];
        if (entries.Count > 0 && !Overwrite)
            throw new PeftDslException($"--out {Output} is not empty; pass --overwrite to replace it, or --resume to continue its run");
        if (entries.FirstOrDefault(e => !RunEntries.Contains(e)) is { } foreign)
            throw new PeftDslException($"--overwrite replaces only an earlier peft train run, but {Output} also holds {foreign}; choose another --out or move it");
        var full = Path.GetFullPath(Output).TrimEnd('/');
        foreach (var input in new[] { Model, Data, Eval }.OfType<string>())
            if (Path.GetFullPath(input).StartsWith(full + "/", StringComparison.Ordinal) || Path.GetFullPath(input) == full)
                throw new PeftDslException($"--out {Output} contains the input {input}; write the run elsewhere");
    }
}

/// <summary>A prompt table and the name the trained task takes in it.</summary>
public sealed record TableEntry(string Task, string Folder)
{
    /// <summary>Refuses before training a name the table already has, or a folder that is something else.</summary>
    public void CheckFree()
    {
        Peft.Prompts.PromptTable.ValidateName(Task, "--task name");
        if (File.Exists(Folder)) throw new PeftDslException($"--table {Folder} is a file");
        if (!Directory.Exists(Folder) || !Directory.EnumerateFileSystemEntries(Folder).Any()) return;
        if (!Peft.Prompts.PromptTableFile.IsTable(Folder))
            throw new PeftDslException($"--table {Folder} holds other things and no {Peft.Prompts.PromptTableFile.IndexFile}; choose a new folder or a prompt table");
        using var scope = TorchSharp.torch.NewDisposeScope();
        if (Peft.Prompts.PromptTableFile.Read(Folder).Any(e => e.Task == Task))
            throw new PeftDslException($"--table {Folder} already has a task '{Task}'; choose another --task name");
    }
}

/// <summary>
/// Ctrl-C (SIGINT) or SIGTERM asks the run to stop after its current step, save a checkpoint and write the adapter.
/// A second signal is not intercepted, so it ends the process at once (every file write is atomic).
/// </summary>
public sealed class StopOnSignal : IDisposable
{
    private readonly CancellationTokenSource source = new();
    private readonly PosixSignalRegistration[] registrations;

    /// <summary>Starts intercepting the first SIGINT or SIGTERM until disposed.</summary>
    public StopOnSignal()
    {
        registrations = [PosixSignalRegistration.Create(PosixSignal.SIGINT, Handle), PosixSignalRegistration.Create(PosixSignal.SIGTERM, Handle)];
    }

    /// <summary>Cancelled when the first signal arrives: the trainer stops after its current step.</summary>
    public CancellationToken Token => source.Token;

    private void Handle(PosixSignalContext context)
    {
        if (source.IsCancellationRequested) return;
        context.Cancel = true;
        source.Cancel();
        if (!Program.IsSecondaryRank) Console.Error.WriteLine("stopping after this step (a second Ctrl-C ends at once)…");
    }

    /// <summary>Restores the default handling of SIGINT and SIGTERM.</summary>
    public void Dispose()
    {
        foreach (var r in registrations) r.Dispose();
        source.Dispose();
    }
}
