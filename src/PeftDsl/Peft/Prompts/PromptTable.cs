using PeftDsl.Errors;
using PeftDsl.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftDsl.Peft.Prompts;

/// <summary>The registered module that holds every task (<c>prompt_encoder.{task}.…</c>, peft's names).</summary>
public sealed class PromptEncoderDict : nn.Module, IPeftTensors
{
    /// <summary>An empty dict; the prompt table creates it with its first task.</summary>
    public PromptEncoderDict() : base(nameof(PromptEncoderDict))
    {
    }

    /// <summary>The task's module; it must be registered here (see <c>Contains</c>).</summary>
    public PromptTask this[string task] => (PromptTask)_internal_submodules[task];

    /// <summary>True when the task has a module here.</summary>
    public bool Contains(string task) => _internal_submodules.ContainsKey(task);

    /// <summary>Registers <paramref name="module"/> as the task's module, disposing the one it replaces (as freezing an encoder does).</summary>
    public void Set(string task, PromptTask module)
    {
        Remove(task);
        register_module(task, module);
    }

    /// <summary>Removes and disposes the task's module; a name not here is ignored.</summary>
    public void Remove(string task)
    {
        if (!_internal_submodules.ContainsKey(task)) return;
        var module = _internal_submodules[task];
        _internal_submodules.Remove(task);
        module.Dispose();
    }

    /// <summary>Empty on purpose: children are registered explicitly (<c>register_module</c>), not by TorchSharp's field reflection.</summary>
    protected override void RegisterComponents()
    {
    }
}

/// <summary>
/// NeMo's prompt table: virtual prompts by task name, each learned with prompt tuning, P-tuning or prefix tuning.
/// Adding, training or freezing one task never touches another's tensors. A call runs the active task for every row,
/// or one task per row (<c>adapterNames</c> may name tasks and LoRA adapters alike).
/// </summary>
public sealed class PromptTable
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
            var value = reader.Read(name);
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

    /// <summary>True when a routed row has a prefix-tuning task.</summary>
    internal bool RoutesPrefix(AdapterRouting routing) =>
        routing.PromptRows is { } rowTasks && rowTasks.Any(t => t is not null && this[t].Method == PromptMethod.PrefixTuning);

    /// <summary>
    /// The virtual tokens of one call. Every distinct task's rows are computed once; a batch of one task is a view
    /// (expand) of them, a mixed batch one gather from the tasks' left-padded stack.
    /// </summary>
    /// <param name="inputIds">(B, T) ids; negative ids are slots of virtual tokens (<see cref="VirtualTokens.SlotId"/>).</param>
    /// <param name="rows">Whether to compute the rows (false on decoding steps whose cache holds them).</param>
    internal VirtualTokens? Tokens(AdapterRouting routing, Tensor inputIds, bool rows)
    {
        if (order.Count == 0) return null;   // no task: nothing to look for, and no host sync
        var batch = inputIds.shape[0];
        var device = inputIds.device;
        if (rows && inputIds.NumberOfElements > 0 && inputIds.min().item<long>() < 0) return SlotTokens(routing, inputIds);
        if (routing.PromptRows is not { } rowTasks) return null;
        var distinct = rowTasks.Where(t => t is not null).Select(t => t!).Distinct().ToList();
        if (distinct.Count == 0) return null;
        var configs = distinct.Select(t => this[t]).ToList();
        var prefix = configs.Count(c => c.Method == PromptMethod.PrefixTuning);
        if (prefix != 0 && prefix != configs.Count)
            throw new PeftDslException("one batch cannot mix prefix-tuning tasks with prompt-tuning or P-tuning tasks");
        var counts = rowTasks.Select(t => t is null ? 0L : this[t].NumVirtualTokens).ToArray();
        var count = counts.Max();
        var rowMask = counts.All(c => c == count)
            ? null
            : arange(count, dtype: ScalarType.Int64, device: device).unsqueeze(0)
                .ge(tensor(counts.Select(c => count - c).ToArray(), dtype: ScalarType.Int64, device: device).unsqueeze(1)).to(ScalarType.Int64);
        if (!rows) return new VirtualTokens(count, null, rowMask, null);

        Tensor embeddings;
        if (distinct.Count == 1 && rowMask is null)
        {
            embeddings = CallRows(distinct[0]).narrow(0, 0, count).to(device).unsqueeze(0).expand(batch, -1, -1);
        }
        else
        {
            // Slot k holds task k's rows left-padded to the longest; the last slot is the rows without a task.
            var width = configs[0].RowWidth;
            var padded = distinct.Select(t =>
            {
                var r = CallRows(t).narrow(0, 0, this[t].NumVirtualTokens).to(device);
                return r.shape[0] == count ? r : cat([zeros(count - r.shape[0], width, dtype: r.dtype, device: device), r], 0);
            }).Append(zeros(count, width, device: device)).ToList();
            var slots = rowTasks.Select(t => t is null ? distinct.Count : (long)distinct.IndexOf(t)).ToArray();
            embeddings = stack(padded).index_select(0, tensor(slots, dtype: ScalarType.Int64, device: device));
        }
        if (prefix == 0) return new VirtualTokens(count, embeddings, rowMask, null);

        // peft's layout: (B, P, layers × 2 × heads × head) → 2L entries e, key and value of layer l at e[2l], e[2l + 1].
        var c0 = configs[0];
        var heads = c0.NumAttentionHeads;
        var kv = embeddings.view(batch, count, 2 * c0.NumLayers, heads, c0.TokenDim / heads).permute(2, 0, 3, 1, 4);
        var layers = Enumerable.Range(0, c0.NumLayers).Select(l => (kv[PrefixEntry(c0, l, 0)], kv[PrefixEntry(c0, l, 1)])).ToList();
        return new VirtualTokens(count, null, rowMask, layers);
    }

    /// <summary>Which of the 2L saved entries is decoder layer <paramref name="layer"/>'s key (<paramref name="part"/> 0)
    /// or value (1). Causal: 2l + part. On an encoder-decoder peft 0.21 concatenates the 2L entries with themselves
    /// and cuts the 4L into groups of four (self key, self value, cross key, cross value) per layer, so layer l's
    /// self-attention reads entry (4l + part) mod 2L: layer 1 of 2 reuses layer 0's pair. Computed as peft does, so
    /// that its folders mean the same here.</summary>
    private static int PrefixEntry(PromptConfig config, int layer, int part) =>
        config.NumTransformerSubmodules == 2 ? (4 * layer + part) % (2 * config.NumLayers) : 2 * layer + part;

    /// <summary>NeMo's markers: the input holds slot ids where the virtual tokens go, as many as its task has.</summary>
    private VirtualTokens SlotTokens(AdapterRouting routing, Tensor inputIds)
    {
        var batch = inputIds.shape[0];
        var rowTasks = routing.PromptRows ?? Enumerable.Repeat<string?>(null, (int)batch).ToList();
        var slots = (inputIds.neg() - 1).clamp_min(-1);   // j at slot positions, −1 elsewhere
        var host = inputIds.cpu();
        var counts = new long[batch];
        for (var i = 0; i < batch; i++)
        {
            // Every prompted row has exactly its task's slots 0 … P−1, once each: a partial prompt is refused.
            var found = host[i].data<long>().Where(id => id < 0).Select(id => -1 - id).Order().ToArray();
            var task = rowTasks[i];
            if (task is null)
            {
                if (found.Length > 0) throw new PeftDslException($"row {i} has virtual-prompt slots (negative ids) but no prompt task is routed to it");
                continue;
            }
            var config = this[task];
            if (config.Method == PromptMethod.PrefixTuning)
                throw new PeftDslException($"row {i}: virtual-prompt slots need a prompt-tuning or P-tuning task; '{task}' is prefix tuning");
            if (!found.SequenceEqual(Enumerable.Range(0, config.NumVirtualTokens).Select(j => (long)j)))
                throw new PeftDslException(found.Length == 0
                    ? $"row {i} runs task '{task}' without virtual-prompt slots while other rows have them; in one batch every prompted row has slots or none does"
                    : $"row {i}: task '{task}' has {config.NumVirtualTokens} virtual tokens, so its slots are ids -1 … -{config.NumVirtualTokens}, each once; " +
                      $"the row has slots {string.Join(", ", found.Select(j => -1 - j))}");
            counts[i] = config.NumVirtualTokens;
        }
        var count = counts.Max();
        var distinct = rowTasks.Where(t => t is not null).Select(t => t!).Distinct().ToList();
        var width = distinct.Count == 0 ? 1 : this[distinct[0]].TokenDim;
        var device = inputIds.device;
        var padded = distinct.Select(t =>
        {
            var r = CallRows(t).narrow(0, 0, this[t].NumVirtualTokens).to(device);
            return r.shape[0] == count ? r : cat([r, zeros(count - r.shape[0], width, dtype: r.dtype, device: device)], 0);
        }).Append(zeros(count, width, device: device)).ToList();
        var rowSlots = rowTasks.Select(t => t is null ? distinct.Count : (long)distinct.IndexOf(t)).ToArray();
        var slotRows = stack(padded).index_select(0, tensor(rowSlots, dtype: ScalarType.Int64, device: device));   // (B, P, C)
        return new VirtualTokens(slots, slotRows, inputIds.clamp_min(0));
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

    /// <summary>The token embedding the virtual-prompt site follows.</summary>
    private Modules.Embedding InputEmbedding()
    {
        var site = model.Sites().FirstOrDefault(s => s.Kind == SiteKind.VirtualPrompt)
            ?? throw new PeftDslException($"{model.GetName()} declares no virtual-prompt site, so prompt learning cannot attach");
        var modules = Checkpoints.CheckpointLayout.ModulesWithRoot(model).ToList();
        if (modules.FirstOrDefault(m => m.Path == site.ModulePath).Module is Modules.Embedding registered) return registered;
        // A shared embedding (T5's encoder.embed_tokens is the root's `shared`) is registered once, under the root's
        // name; the stack keeps it in the field the generator names after the checkpoint segment.
        var dot = site.ModulePath.LastIndexOf('.');
        var owner = modules.FirstOrDefault(m => m.Path == (dot < 0 ? "" : site.ModulePath[..dot])).Module;
        return owner?.GetType().GetField(site.ModulePath[(dot + 1)..])?.GetValue(owner) as Modules.Embedding
            ?? throw new PeftDslException($"{model.GetName()}: the virtual-prompt site {site.ModulePath} is not a token embedding");
    }

    /// <summary>Fills the geometry from the model, as peft's <c>_prepare_prompt_learning_config</c> does.</summary>
    private PromptConfig Complete(PromptConfig config, string source)
    {
        var seq2seq = model is Seq2SeqLanguageModel;
        config = config with
        {
            TaskType = seq2seq ? "SEQ_2_SEQ_LM" : "CAUSAL_LM",
            NumTransformerSubmodules = seq2seq ? 2 : 1,
            TokenDim = InputEmbedding().Dim,
        };
        if (config.Method == PromptMethod.PrefixTuning)
        {
            var (layers, heads, headDim) = SelfAttentionGeometry(source);
            config = config with { NumLayers = layers, NumAttentionHeads = heads, TokenDim = heads * headDim };
        }
        config.Validate(source);
        return config;
    }

    /// <summary>A loaded config must mean this model: same kind, token size and, for prefix tuning, geometry.</summary>
    private PromptConfig CheckFits(PromptConfig config, string source)
    {
        var seq2seq = model is Seq2SeqLanguageModel;
        var submodules = seq2seq ? 2 : 1;
        if (config.TaskType is { } t && t != (seq2seq ? "SEQ_2_SEQ_LM" : "CAUSAL_LM"))
            throw new PeftDslException($"{source}: task_type is {t}, but the model is {(seq2seq ? "an encoder-decoder (SEQ_2_SEQ_LM)" : "a causal LM (CAUSAL_LM)")}");
        if (config.NumTransformerSubmodules != submodules)
            throw new PeftDslException($"{source}: num_transformer_submodules is {config.NumTransformerSubmodules}, this model needs {submodules}");
        if (config.Method == PromptMethod.PrefixTuning)
        {
            var (layers, heads, headDim) = SelfAttentionGeometry(source);
            if (config.NumLayers != layers || config.NumAttentionHeads != heads || config.TokenDim != heads * headDim)
                throw new PeftDslException($"{source}: the prefix is for {config.NumLayers} layers × {config.NumAttentionHeads} heads × " +
                                           $"token_dim {config.TokenDim}; this model has {layers} {(seq2seq ? "decoder " : "")}self-attention layers × {heads} key/value heads × {heads * headDim}" +
                                           (seq2seq && config.NumLayers != layers
                                               ? " (peft writes the encoder's layer count for T5 models whose decoder has fewer layers; only equal counts are supported)"
                                               : ""));
        }
        else if (config.TokenDim != InputEmbedding().Dim)
        {
            throw new PeftDslException($"{source}: token_dim is {config.TokenDim}, the model's embeddings have {InputEmbedding().Dim}");
        }
        return config;
    }

    /// <summary>Self-attention layers, key/value heads and head size, read from one probe step through a cache, so
    /// any architecture the DSL declares answers in its own terms. On an encoder-decoder these are the decoder's: peft
    /// gives the prefix to the decoder's self-attention only (its cache's cross-attention part stays empty).</summary>
    private (int Layers, int Heads, long HeadDim) SelfAttentionGeometry(string source)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        using var cache = new KvCache();
        var wasTraining = model.training;
        model.eval();
        try
        {
            var probe = zeros(1, 1, dtype: ScalarType.Int64, device: Device);
            if (model is Seq2SeqLanguageModel seq2seq)
                seq2seq.Decode(probe, seq2seq.Encode(probe, null, AdapterRouting.None), null, cache: cache, routing: AdapterRouting.None, lastPositionOnly: true);
            else
                ((CausalLanguageModel)model).Logits(probe, cache: cache, routing: AdapterRouting.None, lastPositionOnly: true);
        }
        finally
        {
            model.train(wasTraining);
        }
        var shapes = cache.SelfShapes;
        if (shapes.Count == 0 || shapes.Distinct().Count() != 1)
            throw new PeftDslException($"{source}: prefix tuning needs self-attention layers of one shape; this model's are {string.Join(", ", shapes)}");
        return (shapes.Count, (int)shapes[0].Heads, shapes[0].HeadDim);
    }

    private Tensor InitialRows(PromptConfig config, IReadOnlyList<long>? initTextIds, string source)
    {
        using var noGrad = no_grad();
        var embedding = InputEmbedding();
        var n = config.TotalVirtualTokens;
        switch (config.Init)
        {
            case PromptInit.Text:
                if (initTextIds is not { Count: > 0 })
                    throw new PeftDslException($"{source}: TEXT initialisation needs the init text's token ids (it tokenized to nothing)");
                if (initTextIds.Any(id => id < 0 || id >= embedding.Count))
                    throw new PeftDslException($"{source}: an init text token id is outside the vocabulary of {embedding.Count}");
                // peft: repeat the ids to cover the virtual tokens, then cut to length.
                var ids = Enumerable.Range(0, n).Select(i => initTextIds[i % initTextIds.Count]).ToArray();
                return embedding.weight.index_select(0, tensor(ids, dtype: ScalarType.Int64, device: embedding.weight.device)).to(Dtype).clone();
            case PromptInit.SampleVocab:
                var sampled = randint(0, embedding.Count, [n], dtype: ScalarType.Int64, device: embedding.weight.device);
                return embedding.weight.index_select(0, sampled).to(Dtype).clone();
            default:
                return config.Method == PromptMethod.PrefixTuning
                    ? randn(n, config.RowWidth, dtype: Dtype, device: Device)
                    : randn(n, config.TokenDim, dtype: Dtype, device: Device);
        }
    }

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
