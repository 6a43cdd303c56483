using PeftDsl.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftDsl.Data;

/// <summary>
/// A padded batch. Causal: <see cref="InputIds"/> is prompt + answer, right-padded, with labels aligned to it
/// (transformers' convention: the loss shifts them). Seq2seq: the prompt feeds the encoder, the decoder reads the
/// answer shifted right after the start token, and the labels are the answer. Labels are -100 where no loss is taken.
/// </summary>
/// <param name="Packed">Causal rows holding several examples each (<see cref="CausalPacked"/>), or null.</param>
public sealed record Batch(Tensor InputIds, Tensor AttentionMask, Tensor Labels, Tensor? DecoderInputIds, long LossTokens,
    PackedSequences? Packed = null) : IDisposable
{
    /// <summary>The batch size B (rows of <c>InputIds</c>).</summary>
    public long Rows => InputIds.shape[0];

    /// <summary>Frees the batch's tensors (ids, mask, labels and, for seq2seq, decoder ids).</summary>
    public void Dispose()
    {
        InputIds.Dispose();
        AttentionMask.Dispose();
        Labels.Dispose();
        DecoderInputIds?.Dispose();
        Packed?.Dispose();
    }

    /// <param name="answerOnly">NeMo's answer_only_loss: prompt tokens take no loss; in a conversation, TRL's
    /// assistant_only_loss: only the assistant's tokens take it.</param>
    /// <param name="firstIsTarget">Virtual tokens come in front, so the first token is predicted from the last of them.</param>
    public static Batch Causal(IReadOnlyList<TokenizedExample> examples, bool answerOnly, Device device, long pad = 0, bool firstIsTarget = false)
    {
        var length = examples.Max(e => e.Length);
        var ids = new long[examples.Count, length];
        var mask = new long[examples.Count, length];
        var labels = new long[examples.Count, length];
        long lossTokens = 0;
        for (var row = 0; row < examples.Count; row++)
        {
            var e = examples[row];
            for (var col = 0; col < length; col++)
            {
                var inPrompt = col < e.Prompt.Length;
                var inside = col < e.Length;
                ids[row, col] = inside ? (inPrompt ? e.Prompt[col] : e.Answer[col - e.Prompt.Length]) : pad;
                mask[row, col] = inside ? 1 : 0;
                // Virtual-prompt slots (negative ids) are not tokens to predict.
                // A conversation marks its assistant tokens itself (they are spread over several turns).
                var target = inside && IsTarget(e, col, answerOnly);
                labels[row, col] = inside && target && ids[row, col] >= 0 ? ids[row, col] : Losses.IgnoreIndex;
                // The first position is a target only after virtual tokens: otherwise nothing precedes it.
                if ((col > 0 || firstIsTarget) && labels[row, col] != Losses.IgnoreIndex) lossTokens++;
            }
        }
        return new Batch(tensor(ids, device: device), tensor(mask, device: device), tensor(labels, device: device), null, lossTokens);
    }

    /// <summary>
    /// The same examples as <see cref="Causal"/>, packed: first-fit in order of decreasing length into rows as long as
    /// the longest example, so short examples share a row instead of each padding to that length. Each example keeps
    /// its positions and sees only itself (<see cref="PackedSequences"/>), and its first token takes no loss, as it
    /// takes none alone: the loss and its token count are those of the unpacked batch.
    /// </summary>
    public static Batch CausalPacked(IReadOnlyList<TokenizedExample> examples, bool answerOnly, Device device, long pad = 0)
    {
        var capacity = examples.Max(e => e.Length);
        var rows = new List<List<TokenizedExample>>();
        var used = new List<int>();
        foreach (var e in examples.OrderByDescending(e => e.Length))
        {
            var row = used.FindIndex(u => u + e.Length <= capacity);
            if (row < 0)
            {
                rows.Add([]);
                used.Add(0);
                row = rows.Count - 1;
            }
            rows[row].Add(e);
            used[row] += e.Length;
        }
        var ids = new long[rows.Count, capacity];
        var mask = new long[rows.Count, capacity];
        var labels = new long[rows.Count, capacity];
        var segments = new long[rows.Count, capacity];
        var positions = new long[rows.Count, capacity];
        long lossTokens = 0;
        for (var r = 0; r < rows.Count; r++)
        {
            for (var col = 0; col < capacity; col++) (ids[r, col], labels[r, col]) = (pad, Losses.IgnoreIndex);
            var offset = 0;
            for (var k = 0; k < rows[r].Count; k++)
            {
                var e = rows[r][k];
                for (var i = 0; i < e.Length; i++)
                {
                    var inPrompt = i < e.Prompt.Length;
                    var id = inPrompt ? e.Prompt[i] : e.Answer[i - e.Prompt.Length];
                    var target = IsTarget(e, i, answerOnly);
                    var col = offset + i;
                    ids[r, col] = id;
                    mask[r, col] = 1;
                    segments[r, col] = k + 1;
                    positions[r, col] = i;
                    // Nothing of this example precedes its first token: it is no target, as in its own row.
                    labels[r, col] = i > 0 && target && id >= 0 ? id : Losses.IgnoreIndex;
                    if (labels[r, col] != Losses.IgnoreIndex) lossTokens++;
                }
                offset += e.Length;
            }
        }
        return new Batch(tensor(ids, device: device), tensor(mask, device: device), tensor(labels, device: device), null, lossTokens,
            new PackedSequences(tensor(segments, device: device), tensor(positions, device: device)));
    }

    /// <summary>Whether token <paramref name="i"/> of an example takes the loss: every token with the full loss; with the
    /// answer-only loss, the answer's (NeMo's answer_only_loss) or, in a conversation, the assistant's (TRL's
    /// assistant_only_loss, marked in <c>Targets</c>).</summary>
    private static bool IsTarget(TokenizedExample e, int i, bool answerOnly) =>
        !answerOnly || (e.Targets is { } t ? t[i] : i >= e.Prompt.Length);

    /// <summary>An encoder-decoder batch: <c>InputIds</c>/<c>AttentionMask</c> (B, S) hold the right-padded prompts,
    /// <c>DecoderInputIds</c> (B, T) the answers shifted right after <paramref name="decoderStart"/>, and <c>Labels</c>
    /// (B, T) the answers themselves with -100 past each one's end (no shift at loss time).</summary>
    /// <param name="decoderStart">The decoder's first token (T5: <c>decoder_start_token_id</c>, the pad token 0).</param>
    /// <param name="pad">The id that fills padding in the encoder and decoder inputs.</param>
    public static Batch Seq2Seq(IReadOnlyList<TokenizedExample> examples, long decoderStart, Device device, long pad = 0)
    {
        var inputLength = examples.Max(e => e.Prompt.Length);
        var answerLength = examples.Max(e => e.Answer.Length);
        var ids = new long[examples.Count, inputLength];
        var mask = new long[examples.Count, inputLength];
        var decoder = new long[examples.Count, answerLength];
        var labels = new long[examples.Count, answerLength];
        long lossTokens = 0;
        for (var row = 0; row < examples.Count; row++)
        {
            var e = examples[row];
            for (var col = 0; col < inputLength; col++)
            {
                ids[row, col] = col < e.Prompt.Length ? e.Prompt[col] : pad;
                mask[row, col] = col < e.Prompt.Length ? 1 : 0;
            }
            for (var col = 0; col < answerLength; col++)
            {
                decoder[row, col] = col == 0 ? decoderStart : col <= e.Answer.Length ? e.Answer[col - 1] : pad;
                labels[row, col] = col < e.Answer.Length ? e.Answer[col] : Losses.IgnoreIndex;
                if (col < e.Answer.Length) lossTokens++;
            }
        }
        return new Batch(tensor(ids, device: device), tensor(mask, device: device), tensor(labels, device: device),
            tensor(decoder, device: device), lossTokens);
    }
}
