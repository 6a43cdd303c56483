using PeftDsl.Modules;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftDsl.Peft.Lora;

/// <summary>
/// peft's trainable tokens (LoRA's <c>trainable_token_indices</c>): chosen rows of the input embedding, and of a head
/// tied to it, replaced by trainable rows, so a chat fine-tune can teach new special tokens without training the
/// whole table. Registered as <c>token_adapter</c> under the embedding, so the rows are named as peft names them:
/// <c>….embed_tokens.token_adapter.trainable_tokens_delta.{adapter}</c> (despite the name, whole rows, not
/// differences). Each adapter's rows start as copies of the rows they replace, which are also kept to unmerge.
/// </summary>
public sealed class TrainableTokens : nn.Module, IPeftTensors
{
    private readonly TokenRows rows = new();
    private readonly Dictionary<string, long[]> indices = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Tensor> originals = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Tensor> slots = new(StringComparer.Ordinal);
    private readonly long vocab;

    /// <param name="vocab">Rows of the embedding the tokens index.</param>
    /// <param name="applying">The adapters whose rows replace the embedding's now (active, enabled, not merged), in order.</param>
    internal TrainableTokens(long vocab, Func<IEnumerable<string>> applying) : base(nameof(TrainableTokens))
    {
        this.vocab = vocab;
        Applying = applying;
        register_module("trainable_tokens_delta", rows);
    }

    private Func<IEnumerable<string>> Applying { get; }

    /// <summary>Adapters with rows here.</summary>
    public IReadOnlyCollection<string> Adapters => indices.Keys;

    /// <summary>The token ids whose rows the adapter replaces.</summary>
    public IReadOnlyList<long> Indices(string adapter) => indices[adapter];

    /// <summary>The adapter's [tokens, dim] rows (trainable).</summary>
    public Parameter Rows(string adapter) => rows[adapter];

    internal void Add(string adapter, long[] tokenIds, Tensor initial, Tensor original)
    {
        indices[adapter] = tokenIds;
        rows.Add(adapter, initial);
        originals[adapter] = original.DetachFromDisposeScope();
    }

    internal void Remove(string adapter)
    {
        if (!indices.Remove(adapter)) return;
        rows.Remove(adapter);
        originals.Remove(adapter, out var original);
        original?.Dispose();
        if (slots.Remove(adapter, out var slot)) slot.Dispose();
    }

    /// <summary>Looked-up rows (…, dim) of <paramref name="ids"/> (…) with every applying adapter's rows in place of
    /// its tokens' (the last adapter wins where two replace one token, as peft's successive index_copy).</summary>
    internal Tensor Replace(Tensor looked, Tensor ids)
    {
        using var scope = NewDisposeScope();
        foreach (var adapter in Applying().Where(indices.ContainsKey))
        {
            var slot = Slots(adapter, ids.device).index_select(0, ids.reshape(-1)).view(ids.shape);     // (…): row or −1
            var picked = rows[adapter].index_select(0, slot.clamp_min(0).reshape(-1)).view(looked.shape).to(looked.dtype);
            looked = where(slot.ge(0).unsqueeze(-1), picked, looked);
        }
        return looked.MoveToOuterDisposeScope();
    }

    /// <summary>Logits (…, vocab) of a head tied to the embedding with the applying adapters' rows: their columns are
    /// <paramref name="x"/> against the trainable rows.</summary>
    internal Tensor Logits(Tensor logits, Tensor x)
    {
        using var scope = NewDisposeScope();
        foreach (var adapter in Applying().Where(indices.ContainsKey))
        {
            var columns = nn.functional.linear(x, rows[adapter].to(x.dtype));                          // (…, tokens)
            var at = tensor(indices[adapter], dtype: ScalarType.Int64, device: logits.device);
            logits = logits.index_copy(-1, at, columns.to(logits.dtype));
        }
        return logits.MoveToOuterDisposeScope();
    }

    /// <summary>Writes the adapter's rows into <paramref name="weight"/> (merge).</summary>
    internal void MergeInto(string adapter, Tensor weight)
    {
        using var noGrad = no_grad();
        using var at = tensor(indices[adapter], dtype: ScalarType.Int64, device: weight.device);
        weight.index_copy_(0, at, rows[adapter].to(weight.dtype));
    }

    /// <summary>Puts the rows the adapter replaced back into <paramref name="weight"/> (unmerge).</summary>
    internal void RestoreInto(string adapter, Tensor weight)
    {
        using var noGrad = no_grad();
        using var at = tensor(indices[adapter], dtype: ScalarType.Int64, device: weight.device);
        weight.index_copy_(0, at, originals[adapter].to(weight.dtype));
    }

    /// <summary>A [vocab] table: the adapter's row for each of its tokens, −1 elsewhere; built once per device.</summary>
    private Tensor Slots(string adapter, Device device)
    {
        if (slots.TryGetValue(adapter, out var table) && table.device_type == device.type && table.device_index == device.index) return table;
        table?.Dispose();
        var values = Enumerable.Repeat(-1L, (int)vocab).ToArray();
        var ids = indices[adapter];
        for (var i = 0; i < ids.Length; i++) values[ids[i]] = i;
        table = tensor(values, dtype: ScalarType.Int64, device: device).DetachFromDisposeScope();
        slots[adapter] = table;
        return table;
    }

    /// <summary>Empty on purpose: children are registered explicitly, not by TorchSharp's field reflection.</summary>
    protected override void RegisterComponents()
    {
    }

    /// <summary>Frees the kept originals and lookup tables.</summary>
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            foreach (var t in originals.Values.Concat(slots.Values)) t.Dispose();
            originals.Clear();
            slots.Clear();
        }
        base.Dispose(disposing);
    }

    /// <summary>peft's <c>trainable_tokens_delta</c> ParameterDict: one [tokens, dim] parameter per adapter.</summary>
    private sealed class TokenRows : nn.Module, IPeftTensors
    {
        public TokenRows() : base("trainable_tokens_delta")
        {
        }

        public Parameter this[string adapter] => (Parameter)_internal_params[adapter];

        public void Add(string adapter, Tensor value) => register_parameter(adapter, OwnedParameter.Of(value));

        public void Remove(string adapter)
        {
            if (!_internal_params.ContainsKey(adapter)) return;
            var p = _internal_params[adapter];
            _internal_params.Remove(adapter);
            p.Dispose();
        }

        protected override void RegisterComponents()
        {
        }
    }
}
