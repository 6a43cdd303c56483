using PeftDsl.Errors;
using PeftDsl.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftDsl.Peft.Prompts;

/// <summary>The table's virtual tokens for one call: rows in front, NeMo's slots, or a prefix.</summary>
public sealed partial class PromptTable
{
    /// <summary>True when the routed rows' tasks are prefix tuning; a batch that mixes them with prompt tuning or
    /// P-tuning is refused here, before any stack runs.</summary>
    internal bool RoutesPrefix(AdapterRouting routing)
    {
        if (routing.PromptRows is not { } rowTasks) return false;
        var distinct = rowTasks.Where(t => t is not null).Select(t => t!).Distinct().ToList();
        RefuseMixedKinds(distinct);
        return distinct.Count > 0 && this[distinct[0]].Method == PromptMethod.PrefixTuning;
    }

    /// <summary>
    /// A prefix is past keys and values in every layer; a prompt-tuning or P-tuning task is rows in front of the input,
    /// which shift the positions. One batch cannot do both for different rows, so a mix is refused, naming the tasks.
    /// Prefix tasks mix with each other, and so do prompt-tuning and P-tuning tasks.
    /// </summary>
    private void RefuseMixedKinds(IReadOnlyList<string> tasks)
    {
        var prefix = tasks.Where(t => this[t].Method == PromptMethod.PrefixTuning).ToList();
        if (prefix.Count == 0 || prefix.Count == tasks.Count) return;
        throw new PeftDslException($"one batch cannot mix prefix-tuning tasks ({string.Join(", ", prefix)}) with prompt-tuning or P-tuning tasks " +
                                   $"({string.Join(", ", tasks.Except(prefix))}): a prefix goes into every layer's keys and values, the others go in " +
                                   "front of the input; run them in separate batches");
    }

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
        RefuseMixedKinds(distinct);
        var prefix = configs.Count(c => c.Method == PromptMethod.PrefixTuning);
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
}
