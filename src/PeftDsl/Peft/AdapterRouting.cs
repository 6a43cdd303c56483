using static TorchSharp.torch;

namespace PeftDsl.Peft;

/// <summary>
/// The per-call routing channel: which adapters act on which rows of one forward call. The root builds it once per
/// call, from the adapter registry (which validates the names), and it travels in <see cref="Runtime.StackInputs"/>
/// and <see cref="Runtime.ForwardContext"/> to every projection, so no layer recomputes row groups.
/// </summary>
public sealed class AdapterRouting
{
    /// <summary>peft's name for "no adapter on this row" in a mixed batch.</summary>
    public const string BaseRow = "__base__";

    /// <summary>The base model alone: no adapter acts.</summary>
    public static readonly AdapterRouting None = new([], null, null);

    private AdapterRouting(IReadOnlyList<string> active, IReadOnlyList<string>? distinct, Tensor? rowSlots)
    {
        Active = active;
        Distinct = distinct;
        RowSlots = rowSlots;
    }

    /// <summary>Adapters that act on every row, in the order their deltas are added; empty for the base model or a
    /// mixed batch.</summary>
    public IReadOnlyList<string> Active { get; }

    /// <summary>Mixed batch: the distinct adapters named by the rows, slot i being <c>Distinct[i]</c> and slot
    /// <c>Distinct.Count</c> the base model.</summary>
    public IReadOnlyList<string>? Distinct { get; }

    /// <summary>Mixed batch: (B) int64 slot of each row, on the input's device.</summary>
    public Tensor? RowSlots { get; }

    /// <summary>True for a mixed LoRA batch: each row runs its own adapter (or the base model), as <see cref="RowSlots"/> says.</summary>
    public bool IsMixed => RowSlots is not null;

    /// <summary>True when no LoRA adapter acts on any row.</summary>
    public bool IsBaseOnly => Active.Count == 0 && !IsMixed;

    /// <summary>Prompt learning: the task of each row (null for none), or null when no row has a virtual prompt.</summary>
    public IReadOnlyList<string?>? PromptRows { get; private init; }

    /// <summary>This routing with a prompt task per row.</summary>
    internal AdapterRouting WithPrompts(IReadOnlyList<string?> rows) =>
        rows.All(r => r is null) ? this : new(Active, Distinct, RowSlots)
        {
            PromptRows = rows, Ia3Active = Ia3Active, Ia3Rows = Ia3Rows, BottleneckActive = BottleneckActive, BottleneckRows = BottleneckRows,
        };

    /// <summary>Bottleneck adapters that act on every row; empty for none.</summary>
    public IReadOnlyList<string> BottleneckActive { get; private init; } = [];

    /// <summary>Bottleneck adapters: the adapter of each row (null for none) in a mixed batch, or null.</summary>
    public IReadOnlyList<string?>? BottleneckRows { get; private init; }

    /// <summary>This routing with bottleneck adapters for every row, or one per row.</summary>
    internal AdapterRouting WithBottleneck(IReadOnlyList<string> active, IReadOnlyList<string?>? rows) =>
        active.Count == 0 && (rows is null || rows.All(r => r is null))
            ? this
            : new(Active, Distinct, RowSlots)
            {
                PromptRows = PromptRows, Ia3Active = Ia3Active, Ia3Rows = Ia3Rows, BottleneckActive = active,
                BottleneckRows = rows is not null && rows.Any(r => r is not null) ? rows : null,
            };

    /// <summary>IA3 adapters that act on every row (their vectors multiply); empty for none.</summary>
    public IReadOnlyList<string> Ia3Active { get; private init; } = [];

    /// <summary>IA3: the adapter of each row (null for none) in a mixed batch, or null.</summary>
    public IReadOnlyList<string?>? Ia3Rows { get; private init; }

    /// <summary>This routing with IA3 adapters for every row, or one per row.</summary>
    internal AdapterRouting WithIa3(IReadOnlyList<string> active, IReadOnlyList<string?>? rows) =>
        active.Count == 0 && (rows is null || rows.All(r => r is null))
            ? this
            : new(Active, Distinct, RowSlots)
            {
                PromptRows = PromptRows, Ia3Active = active, Ia3Rows = rows is not null && rows.Any(r => r is not null) ? rows : null,
                BottleneckActive = BottleneckActive, BottleneckRows = BottleneckRows,
            };

    /// <summary>This routing with another handle on its row slots (a checkpointed block's own, which outlives the
    /// caller's dispose scope).</summary>
    internal AdapterRouting WithRowSlots(Tensor? rowSlots) =>
        rowSlots is null ? this : new(Active, Distinct, rowSlots)
        {
            PromptRows = PromptRows, Ia3Active = Ia3Active, Ia3Rows = Ia3Rows, BottleneckActive = BottleneckActive, BottleneckRows = BottleneckRows,
        };

    /// <summary>The same adapters for every row.</summary>
    internal static AdapterRouting Uniform(IReadOnlyList<string> active) => active.Count == 0 ? None : new(active, null, null);

    /// <summary>One adapter per row (<see cref="BaseRow"/> for none). The slot tensor belongs to the caller's
    /// dispose scope.</summary>
    internal static AdapterRouting PerRow(IReadOnlyList<string> rowAdapters, Device device)
    {
        var distinct = rowAdapters.Where(a => a != BaseRow).Distinct().ToList();
        var slots = rowAdapters.Select(a => a == BaseRow ? (long)distinct.Count : distinct.IndexOf(a)).ToArray();
        return new([], distinct, tensor(slots, dtype: ScalarType.Int64, device: device));
    }
}
