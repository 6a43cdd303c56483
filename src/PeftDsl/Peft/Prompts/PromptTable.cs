using PeftDsl.Errors;
using PeftDsl.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftDsl.Peft.Prompts;

/// <summary>
/// NeMo's prompt table: virtual prompts by task name, each learned with prompt tuning, P-tuning or prefix tuning.
/// Adding, training or freezing one task never touches another's tensors. A call runs the active task for every row,
/// or one task per row (<c>adapterNames</c> may name tasks and LoRA adapters alike).
/// </summary>
public sealed partial class PromptTable
{
    private readonly LanguageModel model;
    private readonly List<string> order = [];
    private PromptEncoderDict? tasks;

    internal PromptTable(LanguageModel model) => this.model = model;

    /// <summary>Task names in the order they were added.</summary>
    public IReadOnlyList<string> Names => order.ToList();

    /// <summary>The task every row runs when a call names none; null for none.</summary>
    public string? Active { get; private set; }

    /// <summary>True when a prompt task of this name exists.</summary>
    public bool Contains(string task) => order.Contains(task);

    /// <summary>The task's configuration (the model's geometry filled in); an unknown name throws.</summary>
    public PromptConfig this[string task] => Task(task).Config;

    /// <summary>The module of a task (its parameters, its rows).</summary>
    public PromptTask Task(string task) =>
        tasks is not null && tasks.Contains(task) ? tasks[task] : throw Unknown(task);

    /// <summary>
    /// Adds a freshly initialised task, as peft's <c>get_peft_model</c> with a prompt-learning config: its parameters
    /// are trainable, the base model is frozen, and the first task becomes active. The model's geometry fills the
    /// config (token size, submodules; layers and heads for prefix tuning).
    /// </summary>
    /// <param name="initTextIds">Token ids of <see cref="PromptConfig.InitText"/> for TEXT initialisation.</param>
    /// <param name="source">What errors name as the origin of the config.</param>
    public PromptConfig Add(string task, PromptConfig config, IReadOnlyList<long>? initTextIds = null, string source = "PromptConfig")
    {
        CheckNewName(task);
        config = Complete(config, source);
        PromptTask module = config.Method switch
        {
            PromptMethod.PTuning => new PTuningEncoder(config),
            PromptMethod.PrefixTuning when config.PrefixProjection => new PrefixEncoder(config),
            _ => new PromptEmbeddingTask(config, InitialRows(config, initTextIds, source)),
        };
        Register(task, module, trainable: true);
        return config;
    }

    /// <summary>Loads a peft prompt-learning adapter folder as <paramref name="task"/> (frozen unless
    /// <paramref name="trainable"/>). peft saves the encoder's output, so a P-tuning task loads as its table.</summary>
    public void Load(string directory, string task = "default", bool trainable = false)
    {
        CheckNewName(task);
        var (config, rows) = PromptAdapterFile.Read(directory);
        using var scope = NewDisposeScope();
        config = CheckFits(config, Path.Combine(directory, PromptAdapterFile.ConfigFile));
        if (rows.shape[0] != config.TotalVirtualTokens || rows.shape[1] != config.RowWidth)
            throw new PeftDslException($"{Path.Combine(directory, PromptAdapterFile.WeightsFile)}: prompt_embeddings is " +
                                       $"[{string.Join(", ", rows.shape)}], the config means [{config.TotalVirtualTokens}, {config.RowWidth}]");
        Register(task, new PromptEmbeddingTask(config, rows.to(Dtype, Device)), trainable);
    }

    /// <summary>Loads the tasks of a multi-task table folder (<see cref="PromptTableFile"/>), all or the ones named.
    /// Returns the names loaded.</summary>
    public IReadOnlyList<string> LoadTable(string directory, IReadOnlyCollection<string>? only = null, bool trainable = false)
    {
        using var scope = NewDisposeScope();
        var entries = PromptTableFile.Read(directory);
        foreach (var name in only ?? [])
            if (entries.All(e => e.Task != name))
                throw new PeftDslException($"{directory}: the table has no task '{name}' (it has {string.Join(", ", entries.Select(e => e.Task))})");
        var chosen = entries.Where(e => only is null || only.Contains(e.Task)).ToList();
        var loaded = new List<string>();
        try
        {
            foreach (var (task, entry) in chosen)
            {
                CheckNewName(task);
                var config = CheckFits(entry.Config, Path.Combine(directory, PromptTableFile.IndexFile) + $" (task '{task}')");
                Register(task, new PromptEmbeddingTask(config, entry.Rows.to(Dtype, Device)), trainable);
                loaded.Add(task);
            }
        }
        catch
        {
            foreach (var task in loaded) Delete(task);   // all of the table or none of it
            throw;
        }
        return loaded;
    }

    /// <summary>Adds a task's rows (an encoder's output) to a table folder, atomically, leaving its other tasks as they were.</summary>
    public void AddToTable(string directory, string task, string? template = null, string? tableName = null, IReadOnlyList<int>? splits = null)
    {
        using var scope = NewDisposeScope();
        PromptTableFile.Add(directory, tableName ?? task, new PromptTableFile.Entry(this[task], Rows(task).cpu(), template, splits));
    }

    /// <summary>Writes a task in peft's format (the rows as <c>prompt_embeddings</c>), atomically.</summary>
    public void Save(string directory, string task = "default")
    {
        using var scope = NewDisposeScope();
        Checkpoints.AtomicFolder.Write(directory, staging => PromptAdapterFile.Write(staging, this[task], Rows(task)));
    }

    /// <summary>Writes a task's two files into an existing folder, each file atomically.</summary>
    public void WriteInto(string directory, string task)
    {
        Directory.CreateDirectory(directory);
        using var scope = NewDisposeScope();
        PromptAdapterFile.Write(directory, this[task], Rows(task));
    }

    /// <summary>A training checkpoint of a task: its config and every parameter of its module (the encoder too, which
    /// peft's file drops), so that a resumed run continues the same optimisation.</summary>
    public void WriteState(string folder, string task)
    {
        Directory.CreateDirectory(folder);
        var module = Task(task);
        using var scope = NewDisposeScope();
        var tensors = module.named_parameters().ToDictionary(p => p.name, p => p.parameter.detach());
        Checkpoints.Safetensors.SafetensorsWriter.Save(Path.Combine(folder, StateFile), tensors);
        AdapterFolder.WriteConfig(folder, PromptConfigJson.Write(module.Config));
    }

    /// <summary>Restores <see cref="WriteState"/>'s parameters into an existing task built with the same config.</summary>
    public void ReadState(string folder, string task)
    {
        var path = Path.Combine(folder, StateFile);
        if (!File.Exists(path)) throw new PeftDslException($"{folder}: no {StateFile}; not a prompt task's checkpoint");
        using var reader = Checkpoints.Safetensors.SafetensorsReader.Open(path);
        var ours = Task(task).named_parameters().ToDictionary(p => p.name, p => p.parameter);
        var missing = ours.Keys.Where(k => !reader.Entries.ContainsKey(k)).ToList();
        var extra = reader.Entries.Keys.Where(k => !ours.ContainsKey(k)).ToList();
        if (missing.Count + extra.Count > 0)
            throw new PeftDslException($"{path}: the checkpoint's task tensors ({string.Join(", ", reader.Entries.Keys.Order())}) " +
                                       $"do not match this task's ({string.Join(", ", ours.Keys.Order())})");
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        foreach (var (name, p) in ours)
        {
            var value = reader.ReadFinite(name);
            if (!value.shape.SequenceEqual(p.shape))
                throw new PeftDslException($"{path}: {name} is [{string.Join(", ", value.shape)}], the task's [{string.Join(", ", p.shape)}]");
            p.copy_(value.to(p.dtype, p.device));
        }
    }

    private const string StateFile = "task_state.safetensors";

    /// <summary>The task's rows as they would be saved (the encoder's output for P-tuning), detached.</summary>
    public Tensor Rows(string task)
    {
        using var noGrad = no_grad();
        return Task(task).Rows().detach();
    }

    /// <summary>Replaces a P-tuning (or projected prefix) task's encoder by its output, as NeMo and peft do after
    /// training: the task keeps computing the same rows and drops the encoder's parameters.</summary>
    public void Freeze(string task)
    {
        var module = Task(task);
        if (!module.HasEncoder) return;
        using var scope = NewDisposeScope();
        var trainable = module.parameters().Any(p => p.requires_grad);
        Register(task, new PromptEmbeddingTask(module.Config, Rows(task)), trainable, replace: true);
    }

    /// <summary>Removes the task and disposes its module; if it was active, the first remaining task becomes active (none if none is left).</summary>
    public void Delete(string task)
    {
        _ = Task(task);
        tasks!.Remove(task);
        order.Remove(task);
        if (Active == task) Active = order.FirstOrDefault();
    }

    /// <summary>Makes <paramref name="task"/> the task of every row (null: no virtual prompt).</summary>
    public void SetActive(string? task)
    {
        if (task is not null) _ = Task(task);
        Active = task;
    }

    /// <summary>True when the active task puts virtual positions in front of these examples (prompt tuning or
    /// P-tuning, and no slots in them), so their first token is predicted from the last virtual token.</summary>
    public bool PrependsTo(IEnumerable<Data.TokenizedExample> examples) =>
        Active is { } task && this[task].Method != PromptMethod.PrefixTuning && !examples.Any(e => e.Prompt.Any(id => id < 0));

    /// <summary>Sets <c>requires_grad</c> on every parameter of the task's module (its encoder too).</summary>
    public void SetTrainable(string task, bool trainable)
    {
        foreach (var p in Task(task).parameters()) p.requires_grad = trainable;
    }


    /// <summary>
    /// NeMo's inference table: while the returned scope lives, each task's rows are computed once (the P-tuning or
    /// prefix encoder runs once) and every forward call and decoding step without gradients reuses them. For
    /// evaluation and generation loops, which do not train; a call with gradients, and any change to the table,
    /// computes afresh. Changing a task's parameters in place inside the scope is not seen: end the scope first.
    /// </summary>
    public IDisposable InferenceTable()
    {
        if (inference is not null) return new InferenceScope(null);   // nested: the outer scope owns the table
        inference = [];
        return new InferenceScope(this);
    }

    private Dictionary<string, Tensor>? inference;

    private sealed class InferenceScope(PromptTable? table) : IDisposable
    {
        public void Dispose()
        {
            if (table is null) return;
            table.DropInference();
            table.inference = null;
            table = null;
        }
    }

    private void DropInference(string? task = null)
    {
        if (inference is null) return;
        foreach (var name in inference.Keys.Where(k => task is null || k == task).ToList())
        {
            inference[name].Dispose();
            inference.Remove(name);
        }
    }

    /// <summary>A task's rows for one call: from the inference table when one is open and no gradient is wanted.</summary>
    private Tensor CallRows(string task)
    {
        if (inference is null || is_grad_enabled()) return Task(task).Rows();
        if (!inference.TryGetValue(task, out var rows))
        {
            using var scope = NewDisposeScope();
            rows = Task(task).Rows().detach().DetachFromDisposeScope();
            inference[task] = rows;
        }
        return rows.alias();
    }

    private void Register(string task, PromptTask module, bool trainable, bool replace = false)
    {
        DropInference(task);
        if (tasks is null)
        {
            tasks = new PromptEncoderDict();
            model.AttachPeftModule("prompt_encoder", tasks);
        }
        module.to(Device);
        tasks.Set(task, module);
        foreach (var p in module.parameters()) p.requires_grad = trainable;
        model.FreezeBase();
        if (!replace) order.Add(task);
        Active ??= task;
    }

    private Device Device => InputEmbedding().weight.device;

    /// <summary>Prompt rows are kept in fp32 on a bf16/fp16 base, as adapters are; they are cast at insertion.</summary>
    private ScalarType Dtype => InputEmbedding().weight.dtype is ScalarType.BFloat16 or ScalarType.Float16
        ? ScalarType.Float32 : InputEmbedding().weight.dtype;


    /// <summary>A task name is a state-dict segment, a tensor name in the table file and a folder name.</summary>
    public static void ValidateName(string task, string what = "task name")
    {
        if (string.IsNullOrWhiteSpace(task) || task == AdapterRouting.BaseRow || task == "__metadata__" || task.Contains('.')
            || task.Contains('/') || task.Contains('\\') || task.Trim() != task)
            throw new PeftDslException($"'{task}' is not a usable {what}: it is a state-dict segment, a tensor name and a folder name " +
                                       $"(no '.', '/', '\\\\', outer spaces, not '{AdapterRouting.BaseRow}' or '__metadata__')");
    }

    private void CheckNewName(string task)
    {
        ValidateName(task);
        if (Contains(task)) throw new PeftDslException($"a prompt task named '{task}' already exists; delete it first or choose another name");
        model.CheckNameFree(task);
    }

    private PeftDslException Unknown(string task) =>
        new($"prompt task '{task}' does not exist (tasks: {(order.Count == 0 ? "none" : string.Join(", ", order))})");
}
