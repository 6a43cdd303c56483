using System.CommandLine;
using System.Globalization;
using System.Text.RegularExpressions;
using PeftDsl.Errors;
using PeftDsl.Models;
using PeftDsl.Peft;
using PeftDsl.Peft.Lora;
using PeftDsl.Runtime;
using Spectre.Console;

namespace PeftDsl.Cli.Commands;

/// <summary>
/// <c>peft inspect --model DIR [--adapter DIR | --targets …]</c>: the trainable-parameter table, per site and in total,
/// ending with peft's <c>print_trainable_parameters</c> line. Without an adapter it lists the model's LoRA sites, so a
/// user can choose targets; with <c>--targets</c> it shows what a new adapter would train.
/// </summary>
public static class InspectCommand
{
    /// <summary>Builds <c>peft inspect</c>: <c>--model</c> or <c>--shape</c>, an adapter to inspect, or <c>--method</c>,
    /// <c>--targets</c>, <c>--r</c>, <c>--dora</c>, <c>--virtual-tokens</c> to preview a new one.</summary>
    public static Command Create()
    {
        var model = new Option<DirectoryInfo?>("--model") { Description = "Hugging Face checkpoint folder (GPT-2, Llama, GPT-NeoX, Mistral, Qwen2, Qwen3, Gemma 2, Gemma 3, Phi-3, T5, mT5)" };
        var shape = new Option<string?>("--shape") { Description = "Instead of --model, a built-in random-weight shape: " + string.Join(", ", BenchCommand.Shapes.Keys) };
        var method = new Option<string?>("--method") { Description = "Preview a new adapter of this method (lora, ia3, prompt, ptuning, prefix) on --targets, or on peft's default targets" };
        var virtualTokens = new Option<int>("--virtual-tokens") { Description = "prompt/ptuning/prefix preview: virtual tokens", DefaultValueFactory = _ => 20 };
        var targets = new Option<string[]>("--targets")
        {
            Description = "Preview a new LoRA adapter on these targets, space- or comma-separated (module names or dotted suffixes, NeMo site names, attention, mlp, all), or one re:REGEX",
            AllowMultipleArgumentsPerToken = true,
        };
        var rank = new Option<int?>("--r") { Description = "Rank of the previewed adapter (default 8; needs --targets)" };
        var dora = new Option<bool>("--dora") { Description = "Preview with DoRA's magnitude vectors (needs --targets)" };
        var command = new Command("inspect", Program.Example("Show a model's PEFT sites and the trainable parameters of its adapters",
            "peft inspect --shape gpt2-small --method lora --r 8 --targets c_attn")) { model, shape, method, targets, rank, dora, virtualTokens };
        var adapters = new AdapterOptions();
        adapters.AddTo(command);
        command.SetAction(parse => Program.Guard(() =>
        {
            var (adapter, use) = adapters.Read(parse);
            var names = parse.GetValue(targets) ?? [];
            var methodName = parse.GetValue(method);
            var preview = methodName switch
            {
                null => names.Length > 0,
                "lora" => true,
                "ia3" or "adapter" or "prompt" or "ptuning" or "prefix" => false,
                var other => throw new PeftDslException($"--method: '{other}' is not lora, ia3, adapter, prompt, ptuning or prefix"),
            };
            if (!preview && (parse.GetValue(rank) is not null || parse.GetValue(dora)))
                throw new PeftDslException("--r and --dora describe a previewed LoRA adapter: give --method lora or --targets too");
            if (methodName is "prompt" or "ptuning" or "prefix" or "adapter" && names.Length > 0)
                throw new PeftDslException($"--targets does not apply to --method {methodName}");
            var tokens = parse.GetValue(virtualTokens);
            if (tokens <= 0) throw new PeftDslException($"--virtual-tokens must be a positive whole number, got {tokens}");
            Action<LanguageModel>? addOther = methodName switch
            {
                "ia3" => m => m.Ia3.Add("default", Ia3Preview(names), "--targets"),
                "adapter" => m => m.Bottleneck.Add("default", new Peft.Adapters.BottleneckConfig()),
                "prompt" => m => m.Prompts.Add("default", new Peft.Prompts.PromptConfig { Method = Peft.Prompts.PromptMethod.PromptTuning, NumVirtualTokens = tokens }),
                "ptuning" => m => m.Prompts.Add("default", new Peft.Prompts.PromptConfig { Method = Peft.Prompts.PromptMethod.PTuning, NumVirtualTokens = tokens }),
                "prefix" => m => m.Prompts.Add("default", new Peft.Prompts.PromptConfig { Method = Peft.Prompts.PromptMethod.PrefixTuning, NumVirtualTokens = tokens }),
                _ => null,
            };
            var (directory, shapeName) = (parse.GetValue(model)?.FullName, parse.GetValue(shape));
            if ((directory is null) == (shapeName is null)) throw new PeftDslException("give either --model DIR or --shape NAME");
            return Run(directory ?? "shape:" + shapeName, adapter, use, preview ? names : null, parse.GetValue(rank) ?? 8, parse.GetValue(dora), System.Console.Out, addOther);
        }));
        return command;
    }

    /// <summary>An IA3 adapter on <paramref name="names"/> (<see cref="LoraTargets.Parse"/>), or on peft's defaults.</summary>
    private static Peft.Ia3.Ia3Config Ia3Preview(string[] names)
    {
        if (names.Length == 0) return new Peft.Ia3.Ia3Config();
        var (modules, pattern) = LoraTargets.Parse(names, "--targets");
        return new Peft.Ia3.Ia3Config { TargetModules = modules, TargetPattern = pattern };
    }

    /// <param name="directory">A checkpoint folder, or <c>shape:NAME</c> for a built-in random-weight shape.</param>
    /// <param name="targets">Preview a new LoRA adapter on these targets, as text (<see cref="LoraTargets.Parse"/>; empty:
    /// peft's defaults); null: no preview.</param>
    /// <param name="preview">Adds a previewed adapter of another method (IA3, prompt learning), or null.</param>
    public static int Run(string directory, string? adapter, IReadOnlyList<string> use, IReadOnlyList<string>? targets, int rank, bool dora, TextWriter output,
        Action<LanguageModel>? preview = null)
    {
        if (adapter is not null && (targets is not null || preview is not null)) throw new PeftDslException("give either --adapter or a preview (--method/--targets), not both");
        if (rank <= 0) throw new PeftDslException($"--r must be a positive rank, got {rank}");
        using var model = (LanguageModel)(directory.StartsWith("shape:", StringComparison.Ordinal)
            ? BenchCommand.Build(directory["shape:".Length..], Modules.WeightInit.None)   // counted, never run: left unwritten
            : StockModels.LoadGenerative(directory));
        // A rank above every projection's size adds nothing and could ask for gigabytes.
        var widest = model.Adapters.Linears().Max(l => Math.Max(l.Linear.InFeatures, l.Linear.OutFeatures));
        if (targets is not null && rank > widest)
            throw new PeftDslException($"--r {rank} exceeds the model's largest projection size ({widest}); a LoRA rank cannot usefully be larger");
        // Counted as trainable: the adapters that would train, i.e. the active ones.
        AdapterOptions.Attach(model, adapter, use, trainable: true);
        if (targets is not null)
        {
            var (modules, pattern) = targets.Count == 0 ? (null, null) : LoraTargets.Parse(targets, "--targets");
            model.Adapters.Add("default", new LoraConfig { R = rank, Alpha = rank, TargetModules = modules, TargetPattern = pattern, UseDora = dora }, "--targets");
        }
        preview?.Invoke(model);
        var console = PlainConsole(output);
        console.WriteLine($"model: {directory} ({model.ModelType}, {model.GetType().Name})");
        foreach (var name in model.Adapters.Names)
        {
            var c = model.Adapters[name];
            console.WriteLine($"adapter: {name} (LoRA r={c.R}, alpha={Number(c.Alpha)}{(c.UseRsLora ? ", rsLoRA" : "")}{(c.UseDora ? ", DoRA" : "")}" +
                              $"{(model.Adapters.Active.Contains(name) ? ", active" : "")})");
        }
        foreach (var name in model.Bottleneck.Names)
            console.WriteLine($"adapter: {name} (bottleneck, width {model.Bottleneck[name].AdapterDim})");
        foreach (var name in model.Ia3.Names)
            console.WriteLine($"adapter: {name} (IA3{(model.Ia3.Active.Contains(name) ? ", active" : "")})");
        foreach (var name in model.Prompts.Names)
            console.WriteLine($"prompt task: {name} ({Peft.Prompts.PromptConfigJson.PeftType(model.Prompts[name].Method)}, {model.Prompts[name].NumVirtualTokens} virtual tokens)");
        var all = model.AllParameters();
        console.Write(all.All(p => p.Method == PeftMethod.Base) ? SiteTable(model) : TrainableTable(all));
        var trainable = all.Where(p => p.Method != PeftMethod.Base && p.Parameter.requires_grad).Sum(p => p.Parameter.NumberOfElements);
        var total = all.Sum(p => p.Parameter.NumberOfElements);
        console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"trainable params: {trainable:N0} || all params: {total:N0} || trainable%: {100.0 * trainable / total:F4}"));
        return 0;
    }

    /// <summary>One row per (site, module pattern, adapter), with the layers it spans and its parameter count.</summary>
    private static Table TrainableTable(IReadOnlyList<SelectedParameter> all)
    {
        var table = new Table { Border = TableBorder.Simple }.AddColumns("site", "module", "layers", "adapter", "params");
        table.Columns[4].RightAligned();
        var order = all.Select((p, i) => (p.Name, i)).ToDictionary(x => x.Name, x => x.i);
        var rows = all.Where(p => p.Method != PeftMethod.Base)
            .GroupBy(p => (Site: p.Site?.Name ?? "-", Module: Pattern(p.Site?.ModulePath ?? p.Name, p.Layer), p.Adapter))
            .OrderBy(g => g.Key.Adapter, StringComparer.Ordinal).ThenBy(g => g.Min(p => order[p.Name]));
        foreach (var g in rows)
            table.AddRow(Markup.Escape(g.Key.Site), Markup.Escape(g.Key.Module), Layers(g.Select(p => p.Layer)), Markup.Escape(g.Key.Adapter ?? "-"),
                g.Sum(p => p.Parameter.NumberOfElements).ToString("N0", CultureInfo.InvariantCulture));
        return table;
    }

    /// <summary>The model's LoRA sites, to choose targets from.</summary>
    private static Table SiteTable(LanguageModel model)
    {
        var table = new Table { Border = TableBorder.Simple }.AddColumns("site", "module", "layers", "in → out");
        foreach (var g in model.Adapters.Linears()
                     .Select(l => (l.Linear, Site: l.Linear.Sites(l.Path).First(s => s.Kind == SiteKind.Linear)))
                     .GroupBy(x => (x.Site.Name, Module: Pattern(x.Site.ModulePath, x.Site.Layer), x.Linear.InFeatures, x.Linear.OutFeatures)))
            table.AddRow(g.Key.Name, Markup.Escape(g.Key.Module), Layers(g.Select(x => x.Site.Layer)), $"{g.Key.InFeatures} → {g.Key.OutFeatures}");
        return table;
    }

    /// <summary>transformer.h.3.attn.c_attn → transformer.h.*.attn.c_attn: one row covers every layer.</summary>
    private static string Pattern(string path, int? layer) =>
        layer is { } l ? new Regex($@"\.{l}\.").Replace(path, ".*.", 1) : path;

    private static string Layers(IEnumerable<int?> layers)
    {
        var distinct = layers.Where(l => l is not null).Select(l => l!.Value).Distinct().Order().ToList();
        if (distinct.Count == 0) return "-";
        var ranges = new List<string>();
        for (var i = 0; i < distinct.Count;)
        {
            var j = i;
            while (j + 1 < distinct.Count && distinct[j + 1] == distinct[j] + 1) j++;
            ranges.Add(i == j ? $"{distinct[i]}" : $"{distinct[i]}-{distinct[j]}");
            i = j + 1;
        }
        return string.Join(",", ranges);
    }

    private static string Number(double x) => x.ToString("0.####", CultureInfo.InvariantCulture);

    /// <summary>Plain text into any writer (tests, pipes): no colours, no terminal queries, and wide enough that module
    /// paths are never wrapped (a terminal's own width is kept).</summary>
    internal static IAnsiConsole PlainConsole(TextWriter output)
    {
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Ansi = AnsiSupport.No,
            ColorSystem = ColorSystemSupport.NoColors,
            Out = new AnsiConsoleOutput(output),
            Interactive = InteractionSupport.No,
        });
        var terminal = output == System.Console.Out && !System.Console.IsOutputRedirected ? System.Console.WindowWidth : 0;
        console.Profile.Width = Math.Max(terminal, 200);
        return console;
    }
}
