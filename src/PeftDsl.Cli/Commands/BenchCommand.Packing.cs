using PeftDsl.Data;
using PeftDsl.Errors;
using PeftDsl.Generation;
using PeftDsl.Runtime;
using static TorchSharp.torch;

namespace PeftDsl.Cli.Commands;

public static partial class BenchCommand
{
    /// <summary>The training step on a mix of short examples, one to a row and packed (<c>peft train --packing</c>).</summary>
    /// <param name="RealTokens">Tokens of the examples (no padding): what both forms train on.</param>
    private sealed record PackingTimes(long RealTokens, int Shortest, int Longest, double PaddedSeconds, long PaddedRows, long PaddedLength,
        double PackedSeconds, long PackedRows, long PackedLength);

    /// <summary>Refuses --packing where it cannot run, before anything is timed.</summary>
    private static void CheckPacking(IGenerativeModel model, PeftBench peft)
    {
        if (model is not CausalLanguageModel)
            throw new PeftDslException("bench: --packing is for decoder-only models");
        if (peft.IsPrompt || peft.Mixed)
            throw new PeftDslException($"bench: --packing cannot be combined with {(peft.IsPrompt ? "prompt learning" : "--mixed")}");
    }

    /// <summary>
    /// Times the step on <paramref name="batch"/> random examples whose lengths are drawn uniformly from 1/8 of
    /// <paramref name="length"/> to all of it (the seed is fixed, so every run sees the same mix): padded to the longest,
    /// one to a row, and packed, in three alternating rounds (medians). Both steps train on the same examples with the
    /// same loss; the ratio is what packing saves by not computing padding.
    /// </summary>
    private static PackingTimes PackingStep(IGenerativeModel model, PeftBench peft, int batch, int length, int steps, Device device,
        Distributed.ICommunicator ranks)
    {
        CheckPacking(model, peft);
        var causal = (CausalLanguageModel)model;
        var random = new Random(0);
        var vocab = causal.VocabSize;
        var examples = Enumerable.Range(0, batch).Select(_ =>
        {
            var n = random.Next(Math.Max(2, length / 8), length + 1);
            var ids = Enumerable.Range(0, n).Select(_ => (long)random.Next(0, (int)Math.Min(vocab, int.MaxValue))).ToArray();
            return new TokenizedExample("bench", ids[..(n / 2)], ids[(n / 2)..], "bench");
        }).ToList();
        using var padded = Batch.Causal(examples, answerOnly: false, device);
        using var packed = Batch.CausalPacked(examples, answerOnly: false, device);
        double Timed(Batch b)
        {
            var step = TrainStep(causal, peft.Method != "none",
                () => causal.Forward(b.InputIds, b.AttentionMask, b.Labels, packed: b.Packed).Loss!, ranks, device, []);
            var seconds = Time(steps, device, step.Step);
            step.Dispose();
            return seconds;
        }
        // Alternating rounds, A/B/A/B: whichever form ran first would otherwise also pay the allocator's warm-up.
        var (paddedRounds, packedRounds) = (new List<double>(), new List<double>());
        for (var round = 0; round < 3; round++)
        {
            paddedRounds.Add(Timed(padded));
            packedRounds.Add(Timed(packed));
        }
        return new PackingTimes(examples.Sum(e => (long)e.Length), examples.Min(e => e.Length), examples.Max(e => e.Length),
            Median(paddedRounds), padded.InputIds.shape[0], padded.InputIds.shape[1], Median(packedRounds), packed.InputIds.shape[0], packed.InputIds.shape[1]);
    }
}
