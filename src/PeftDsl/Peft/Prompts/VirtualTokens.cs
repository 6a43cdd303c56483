using PeftDsl.Errors;
using static TorchSharp.torch;

namespace PeftDsl.Peft.Prompts;

/// <summary>
/// What one forward call inserts at the input: <see cref="Count"/> virtual positions at the front of every row
/// (rows with fewer virtual tokens are left-padded and masked), either as embeddings written before the token
/// embeddings (prompt tuning, P-tuning) or as past keys and values of every layer (prefix tuning). The root builds it
/// once per call; its tensors belong to the call's dispose scope.
/// </summary>
public sealed class VirtualTokens
{
    internal VirtualTokens(long count, Tensor? embeddings, Tensor? rowMask, IReadOnlyList<(Tensor K, Tensor V)>? prefix)
    {
        Count = count;
        Embeddings = embeddings;
        RowMask = rowMask;
        Prefix = prefix;
    }

    /// <summary>Virtual tokens written into slots of the input (NeMo's template markers) instead of in front.</summary>
    internal VirtualTokens(Tensor slots, Tensor slotRows, Tensor tokenIds) : this(0, null, null, null)
    {
        Slots = slots;
        SlotRows = slotRows;
        TokenIds = tokenIds;
    }

    /// <summary>Slot mode: (B, T) int64, the virtual token index j at the input's slot positions, −1 elsewhere.</summary>
    public Tensor? Slots { get; }

    /// <summary>Slot mode: (B, P, C) each row's task rows, gathered into the slots.</summary>
    public Tensor? SlotRows { get; }

    /// <summary>Slot mode: the input ids with every slot (a negative id) replaced by 0, for the token embedding.</summary>
    public Tensor? TokenIds { get; }

    /// <summary>The virtual-prompt id convention: the input id −1 − j marks the slot of the task's virtual token j.</summary>
    public static long SlotId(int j) => -1 - j;

    /// <summary>Virtual positions in front of each row (the largest count in a mixed batch).</summary>
    public long Count { get; }

    /// <summary>(B, Count, C) rows to write before the token embeddings; null for prefix tuning and for decoding
    /// steps after the first, whose cache already holds them.</summary>
    public Tensor? Embeddings { get; }

    /// <summary>(B, Count) int64, 1 where a row has a virtual token; null when every row has all of them.</summary>
    public Tensor? RowMask { get; }

    /// <summary>Prefix tuning: per self-attention layer, in call order, (B, heads, Count, head size) keys and values.</summary>
    public IReadOnlyList<(Tensor K, Tensor V)>? Prefix { get; }

    /// <summary>The attention mask over virtual and real positions: (B, Count + <paramref name="realLength"/>), or
    /// null when nothing is masked.</summary>
    /// <param name="mask">The caller's (B, realLength) mask over real tokens, or null.</param>
    public Tensor? ExtendMask(Tensor? mask, long batch, long realLength, Device device)
    {
        if (mask is null && RowMask is null) return null;
        if (mask is not null && (mask.dim() != 2 || mask.shape[0] != batch || mask.shape[1] != realLength))
            throw new PeftDslException(
                $"attention_mask has shape [{string.Join(", ", mask.shape)}], expected [{batch}, {realLength}] to match the input");
        var virtualPart = RowMask ?? ones(batch, Count, dtype: ScalarType.Int64, device: device);
        var realPart = mask ?? ones(batch, realLength, dtype: ScalarType.Int64, device: device);
        return cat([virtualPart.to(realPart.dtype, realPart.device), realPart], 1);
    }
}
