using System.CommandLine;
using System.Globalization;
using PeftDsl.Models;
using PeftDsl.Runtime;
using PeftDsl.Training;
using Spectre.Console;

namespace PeftDsl.Cli.Commands;

/// <summary><c>peft eval --model DIR [--adapter DIR] --data FILE</c>: loss, perplexity and exact match, per task and in all.</summary>
public static class EvalCommand
{
    /// <summary>Builds <c>peft eval</c>: <c>--model</c>, <c>--data</c>, <c>--batch</c> (default 8), the adapter, data and
    /// device options. It prints a table of loss, perplexity and exact match per task (and rank accuracy for multiple-choice
    /// data); exit code 0, or 2 for bad input.</summary>
    public static Command Create()
    {
        var model = new Option<DirectoryInfo>("--model") { Description = "Hugging Face checkpoint folder (GPT-2, Llama, GPT-NeoX, Mistral, Qwen2, Qwen3, Gemma 2, Gemma 3, Phi-3, T5, mT5)", Required = true };
        var data = new Option<FileInfo>("--data") { Description = "Examples, JSONL", Required = true };
        var batch = new Option<int>("--batch") { Description = "Examples per batch", DefaultValueFactory = _ => 8 };
        var command = new Command("eval", Program.Example("Loss, perplexity and exact match of greedy answers on JSONL examples",
            "peft eval --model models/gpt2 --adapter runs/mine --data dev.jsonl")) { model, data, batch };
        var adapters = new AdapterOptions();
        adapters.AddTo(command);
        var dataOptions = new DataOptions();
        dataOptions.AddTo(command);
        var placement = new ModelOptions();
        placement.AddTo(command);
        command.SetAction(parse => Program.Guard(() =>
        {
            if (parse.GetValue(batch) <= 0) throw new Errors.PeftDslException($"--batch must be positive, got {parse.GetValue(batch)}");
            var directory = parse.GetValue(model)!.FullName;
            DataOptions.RequireFiles(parse.GetValue(data)!.FullName);
            var format = dataOptions.Format(parse);
            using var lm = (LanguageModel)StockModels.LoadGenerative(directory, placement.Read(parse));
            var (adapter, use) = adapters.Read(parse);
            var loaded = AdapterOptions.Attach(lm, adapter, use);
            if (adapter is not null && Peft.Prompts.PromptTableFile.IsTable(adapter))
                format = TableFormat(adapter, loaded, format, parse.GetResult(dataOptions.Template) is { Implicit: false }
                                                              || parse.GetResult(dataOptions.VirtualTokenSplits) is { Implicit: false });
            var counts = lm.Prompts.Names.Select(t => lm.Prompts[t].NumVirtualTokens).Distinct().ToList();
            if (format.Markers > 0)
                format = counts.Count == 1 ? format.ForVirtualTokens(counts[0])
                    : throw new Errors.PeftDslException($"the template's virtual-prompt markers need one prompt task's virtual tokens; --adapter has {(counts.Count == 0 ? "none" : "tasks of " + string.Join(", ", counts) + " tokens")}");
            var maxLength = dataOptions.Length(parse, directory, format.Markers > 0 ? 0 : counts.DefaultIfEmpty(0).Max());
            var tokenizer = dataOptions.LoadTokenizer(parse, directory, lm);
            var examples = dataOptions.Load(parse, parse.GetValue(data)!.FullName, format, tokenizer, maxLength, dataOptions.ChatTemplates(parse, directory, tokenizer), lm.VocabSize);
            var multipleChoice = examples.Any(e => e.Choices is not null);
            var table = new Table { Border = TableBorder.Simple }.AddColumns("task", "examples", "loss", "perplexity", "exact match")
                .AddColumns(multipleChoice ? ["rank accuracy"] : []);
            var groups = examples.GroupBy(e => e.Task).ToList();
            // Prefix tasks and prompt tasks cannot share a batch, so a table mixing them has no "all" row.
            var mixable = lm.Prompts.Names.Select(t => lm.Prompts[t].Method == Peft.Prompts.PromptMethod.PrefixTuning).Distinct().Count() <= 1;
            foreach (var g in groups.Count > 1 && mixable ? groups.Append(examples.GroupBy(_ => "all").Single()) : groups)
            {
                var r = Evaluator.Run(lm, tokenizer, g.ToList(), parse.GetValue(batch), TaskRows(lm, g.ToList(), adapter));
                table.AddRow([Markup.Escape(g.Key), r.Examples.ToString(CultureInfo.InvariantCulture), r.Loss.ToString("F4", CultureInfo.InvariantCulture),
                    r.Perplexity.ToString("F2", CultureInfo.InvariantCulture), r.ExactMatch.ToString("P1", CultureInfo.InvariantCulture),
                    .. multipleChoice ? [r.RankAccuracy?.ToString("P1", CultureInfo.InvariantCulture) ?? "-"] : Array.Empty<string>()]);
            }
            InspectCommand.PlainConsole(Console.Out).Write(table);
            return 0;
        }));
        return command;
    }

    /// <summary>A table's tasks were trained with a template (and virtual-token splits): without --template, eval uses
    /// theirs; a --template that differs from theirs is refused, as it would place the prompt elsewhere.</summary>
    internal static Data.DataFormat TableFormat(string table, IReadOnlyList<string> tasks, Data.DataFormat format, bool given)
    {
        using var scope = TorchSharp.torch.NewDisposeScope();
        var layouts = Peft.Prompts.PromptTableFile.Read(table).Where(e => tasks.Contains(e.Task))
            .Select(e => (e.Task, e.Entry.Template, Splits: e.Entry.Splits is { } s ? string.Join(",", s) : null)).ToList();
        var distinct = layouts.Select(l => (l.Template, l.Splits)).Distinct().ToList();
        if (!given)
        {
            if (distinct.Count > 1)
                throw new Errors.PeftDslException($"{table}: its tasks were trained with different templates ({string.Join("; ", layouts.Select(l => $"{l.Task}: {l.Template ?? "the input field"}"))}); evaluate one task at a time with --use NAME");
            var (template, splits) = distinct.Single();
            return (format with { Template = template, VirtualTokenSplits = splits?.Split(',').Select(int.Parse).ToList() }).Validate();
        }
        var mine = (format.Template, format.VirtualTokenSplits is { } v ? string.Join(",", v) : null);
        foreach (var (task, template, splits) in layouts)
            if ((template, splits) != mine)
                throw new Errors.PeftDslException($"{table}: task '{task}' was trained with --template \"{template ?? "(the input field)"}\"" +
                                                  (splits is null ? "" : $" --virtual-token-splits {splits}") + "; evaluate it with the same (or leave --template out)");
        return format;
    }

    /// <summary>With a prompt table of several tasks, each example runs the task its <c>taskname</c> names (one mixed
    /// batch); otherwise every row runs the active adapters.</summary>
    private static IReadOnlyList<string>? TaskRows(LanguageModel model, IReadOnlyList<Data.TokenizedExample> examples, string? adapter)
    {
        var tasks = model.Prompts.Names;
        if (tasks.Count < 2) return null;
        if (examples.FirstOrDefault(e => !tasks.Contains(e.Task)) is { } stray)
            throw new Errors.PeftDslException($"{adapter}: the table has no task '{stray.Task}' for {stray.Source} (its tasks: {string.Join(", ", tasks)}); " +
                                              "name one with --use, or give the examples a taskname of the table");
        return examples.Select(e => e.Task).ToList();
    }
}
