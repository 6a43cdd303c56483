namespace PeftDsl.Data;

/// <summary>
/// Which examples form each batch of an epoch: a function of (seed, epoch) alone, so a resumed run sees the same
/// batches. Examples are shuffled, then grouped by length inside windows of 50 batches (transformers'
/// group_by_length), so a batch pads little; the batches are then shuffled again.
/// </summary>
public static class BatchOrder
{
    private const int WindowBatches = 50;

    /// <summary>The batches of one epoch as arrays of example indices; every example appears once, and a batch may be
    /// short at the end of a window.</summary>
    /// <param name="lengths">Each example's token count, indexed like the examples.</param>
    /// <param name="batchSize">Examples per batch.</param>
    /// <param name="seed">The run's seed; with <paramref name="epoch"/> it fixes the order on every machine.</param>
    /// <param name="epoch">The epoch index, so each epoch is shuffled differently.</param>
    /// <param name="groupByLength">Sort by length inside windows of 50 batches (transformers' <c>group_by_length</c>);
    /// false keeps the plain shuffle.</param>
    public static IReadOnlyList<int[]> Epoch(IReadOnlyList<int> lengths, int batchSize, int seed, int epoch, bool groupByLength = true)
    {
        // System.Random with a seed is the same sequence on every .NET version and machine.
        var random = new Random(unchecked(seed * 7919 + epoch));
        var order = Enumerable.Range(0, lengths.Count).ToArray();
        random.Shuffle(order);
        var batches = new List<int[]>();
        var window = batchSize * WindowBatches;
        for (var start = 0; start < order.Length; start += window)
        {
            var chunk = order.Skip(start).Take(window).ToArray();
            if (groupByLength) chunk = chunk.OrderByDescending(i => lengths[i]).ThenBy(i => i).ToArray();
            for (var b = 0; b < chunk.Length; b += batchSize) batches.Add(chunk.Skip(b).Take(batchSize).ToArray());
        }
        var shuffled = batches.ToArray();
        random.Shuffle(shuffled);
        return shuffled;
    }
}
