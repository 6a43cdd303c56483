using System.CommandLine;
using PeftDsl.Errors;
using PeftDsl.Runtime;

namespace PeftDsl.Cli.Commands;

/// <summary><c>--adapter DIR</c> and <c>--use NAME</c>, shared by the commands that run a model with adapters.</summary>
public sealed class AdapterOptions
{
    /// <summary><c>--adapter DIR</c>: the peft adapter folder (or prompt table folder) to load; required when the command needs one.</summary>
    public Option<DirectoryInfo?> Adapter { get; } = new("--adapter")
    {
        Description = "peft adapter folder (adapter_config.json + adapter_model.safetensors; other adapters in subfolders), or a prompt table folder (peft train --table)",
    };

    /// <summary><c>--use NAME</c>: which adapters of the folder to run when it holds several; repeatable, their deltas add.</summary>
    public Option<string[]> Use { get; } = new("--use")
    {
        Description = "Which adapters of the folder to run, when it holds several (repeat for several; their deltas add)",
        AllowMultipleArgumentsPerToken = true,
    };

    /// <param name="required">The command needs an adapter (merge).</param>
    public AdapterOptions(bool required = false) => Adapter.Required = required;

    /// <summary>Adds <c>--adapter</c> and <c>--use</c> to <paramref name="command"/>.</summary>
    public void AddTo(Command command)
    {
        command.Options.Add(Adapter);
        command.Options.Add(Use);
    }

    /// <summary>The adapter folder as a full path (null without <c>--adapter</c>) and the <c>--use</c> names (empty when none).</summary>
    public (string? Directory, string[] Use) Read(ParseResult parse) => (parse.GetValue(Adapter)?.FullName, parse.GetValue(Use) ?? []);

    /// <summary>Loads every adapter of <paramref name="directory"/> and activates <paramref name="use"/>, or the only one.
    /// Returns the active names.</summary>
    public static IReadOnlyList<string> Attach(LanguageModel model, string? directory, IReadOnlyList<string> use, bool trainable = false)
    {
        if (directory is null)
        {
            if (use.Count > 0) throw new PeftDslException("--use needs --adapter");
            return [];
        }
        if (Peft.Prompts.PromptTableFile.IsTable(directory))
        {
            // A multi-task prompt table: every task (or the ones named) is loaded; a lone task is active for every row.
            var tasks = model.Prompts.LoadTable(directory, use.Count > 0 ? use.ToList() : null, trainable);
            // One task runs on every row; with several, each row names its task (eval routes by taskname).
            model.Prompts.SetActive(tasks.Count == 1 ? tasks[0] : null);
            return tasks;
        }
        var found = Peft.Lora.LoraAdapterFile.AdaptersIn(directory);
        var names = found.Select(f => f.Name).ToList();
        // Each folder's config is read once, and only when needed: a broken neighbour does not block the ones asked for.
        var typeOf = new Dictionary<string, string?>(StringComparer.Ordinal);
        string? TypeOf((string Name, string Folder) f) =>
            typeOf.TryGetValue(f.Name, out var t) ? t : typeOf[f.Name] = Peft.AdapterFolder.PeftType(f.Folder);
        // Adapters of different methods (a `peft train --method ptuning,lora` run) act together; two of one method are a choice.
        if (use.Count == 0 && names.Count > 1 && found.GroupBy(f => Family(TypeOf(f))).Any(g => g.Count() > 1))
            throw new PeftDslException($"{directory} holds several adapters ({string.Join(", ", names)}): choose with --use NAME");
        foreach (var name in use.Where(n => !names.Contains(n)))
            throw new PeftDslException($"--use {name}: {directory} has no adapter of that name (it has {string.Join(", ", names)})");
        var active = use.Count > 0 ? use.Distinct().ToArray() : names.ToArray();
        // Only the adapters asked for are read: a broken neighbour in the folder does not block them.
        var chosen = found.Where(f => active.Contains(f.Name)).ToList();
        var types = chosen.ToDictionary(f => f.Name, TypeOf);
        var prompts = chosen.Where(f => types[f.Name] is { } t && Peft.Prompts.PromptConfigJson.PeftTypes.ContainsKey(t)).ToList();
        if (prompts.Count > 1)
            throw new PeftDslException($"--use: {string.Join(", ", prompts.Select(p => p.Name))} are all prompt-learning adapters; a row runs one virtual prompt");
        var ia3 = chosen.Where(f => types[f.Name] == Peft.Ia3.Ia3ConfigJson.PeftType).ToList();
        var bottleneck = chosen.Where(f => types[f.Name] == Peft.Adapters.BottleneckConfigJson.PeftType).ToList();
        foreach (var (name, folder) in chosen)
        {
            if (prompts.Any(p => p.Name == name)) model.Prompts.Load(folder, name, trainable);
            else if (ia3.Any(a => a.Name == name)) model.Ia3.Load(folder, name, trainable);
            else if (bottleneck.Any(a => a.Name == name)) model.Bottleneck.Load(folder, name, trainable);
            else model.Adapters.Load(folder, name, trainable);
        }
        var others = prompts.Concat(ia3).Concat(bottleneck).Select(f => f.Name).ToHashSet();
        model.Adapters.SetActive(active.Where(a => !others.Contains(a)).ToArray());
        if (ia3.Count > 0) model.Ia3.SetActive(ia3.Select(i => i.Name).ToArray());
        if (bottleneck.Count > 0) model.Bottleneck.SetActive(bottleneck.Select(i => i.Name).ToArray());
        if (prompts.Count == 1) model.Prompts.SetActive(prompts[0].Name);
        return active;
    }

    /// <summary>The method a peft_type belongs to: prompt tuning, P-tuning and prefix tuning are one (a row runs one
    /// virtual prompt).</summary>
    private static string Family(string? peftType) =>
        peftType is { } t && Peft.Prompts.PromptConfigJson.PeftTypes.ContainsKey(t) ? "prompt" : peftType ?? "";
}
