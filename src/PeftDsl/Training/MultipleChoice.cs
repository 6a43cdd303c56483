using PeftDsl.Errors;
using PeftDsl.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftDsl.Training;

/// <summary>
/// The T-Few recipe's pieces for multiple-choice data (Liu et al. 2022), which NeMo's IA3 leaves out: every answer
/// choice is scored by the model after the prompt; the length-normalised loss is the cross-entropy over the choices'
/// mean token log-probabilities; the unlikelihood loss pushes down every token of the wrong choices (−log(1 − p + 0.01),
/// as the reference code computes it); rank
/// classification picks the choice with the highest mean log-probability. Usable with any method.
/// </summary>
public static class MultipleChoice
{
    /// <summary>Per choice: the log-probabilities of its tokens, (K, L), and a (K, L) 0/1 mask of real tokens.</summary>
    public sealed record Scores(Tensor TokenLogProbs, Tensor Mask) : IDisposable
    {
        /// <summary>(K) mean token log-probability of each choice: T-Few's length-normalised score.</summary>
        public Tensor LengthNormalized => (TokenLogProbs * Mask).sum(1) / Mask.sum(1);

        /// <summary>Disposes both tensors.</summary>
        public void Dispose()
        {
            TokenLogProbs.Dispose();
            Mask.Dispose();
        }
    }

    /// <summary>Scores every choice after the prompt, in one batch of K rows (causal: prompt + choice; seq2seq: the
    /// prompt into the encoder, the choice as the decoder's target).</summary>
    /// <param name="adapterName">The adapter or prompt task to score with (as a row's <c>adapterNames</c> entry); null for the active ones.</param>
    public static Scores Score(LanguageModel model, long[] prompt, IReadOnlyList<long[]> choices, string? adapterName = null)
    {
        if (choices.Count < 2) throw new PeftDslException($"a multiple-choice example needs at least 2 choices, got {choices.Count}");
        if (choices.FirstOrDefault(c => c.Length == 0) is not null) throw new PeftDslException("a choice is empty");
        var device = model.parameters().First().device;
        using var scope = NewDisposeScope();
        var k = choices.Count;
        var longest = choices.Max(c => c.Length);
        var names = adapterName is null ? null : Enumerable.Repeat(adapterName, k).ToList();
        Tensor logProbs, mask;
        if (model is CausalLanguageModel causal)
        {
            var width = prompt.Length + longest;
            var ids = new long[k, width];
            var attention = new long[k, width];
            for (var row = 0; row < k; row++)
                for (var col = 0; col < prompt.Length + choices[row].Length; col++)
                {
                    ids[row, col] = col < prompt.Length ? prompt[col] : choices[row][col - prompt.Length];
                    attention[row, col] = 1;
                }
            var input = tensor(ids, device: device);
            var logits = causal.Forward(input, tensor(attention, device: device), adapterNames: names).Logits;   // (K, P' + T, V)
            var offset = logits.shape[1] - width;                                                    // virtual tokens in front
            // Choice token t sits at column prompt + t and is predicted from the column before it.
            var predicting = logits.narrow(1, offset + prompt.Length - 1, longest).log_softmax(-1);
            var targets = input.narrow(1, prompt.Length, longest);
            logProbs = predicting.gather(2, targets.unsqueeze(-1)).squeeze(-1);
            mask = tensor(attention, device: device).narrow(1, prompt.Length, longest).to(logProbs.dtype);
        }
        else
        {
            var seq2seq = (Seq2SeqLanguageModel)model;
            var encoder = tensor(prompt, device: device).unsqueeze(0).expand(k, -1);
            var decoder = new long[k, longest];
            var targets = new long[k, longest];
            var real = new float[k, longest];
            for (var row = 0; row < k; row++)
                for (var col = 0; col < choices[row].Length; col++)
                {
                    decoder[row, col] = col == 0 ? seq2seq.DecoderStartTokenId : choices[row][col - 1];
                    targets[row, col] = choices[row][col];
                    real[row, col] = 1;
                }
            var logits = seq2seq.Forward(encoder, null, tensor(decoder, device: device), adapterNames: names).Logits;   // (K, T, V)
            logProbs = logits.log_softmax(-1).gather(2, tensor(targets, device: device).unsqueeze(-1)).squeeze(-1);
            mask = tensor(real, device: device).to(logProbs.dtype);
        }
        return new Scores(logProbs.MoveToOuterDisposeScope(), mask.MoveToOuterDisposeScope());
    }

    /// <summary>T-Few's L_LN: cross-entropy over the choices' length-normalised scores, the label as the target.</summary>
    public static Tensor LengthNormalizedLoss(Scores scores, int label)
    {
        CheckLabel(scores, label);
        using var scope = NewDisposeScope();
        var logits = scores.LengthNormalized.unsqueeze(0);                                          // (1, K)
        return nn.functional.cross_entropy(logits, tensor(new long[] { label }, device: logits.device)).MoveToOuterDisposeScope();
    }

    /// <summary>T-Few's L_UL for one example: <see cref="UnlikelihoodTerms"/>' sum over its count.</summary>
    public static Tensor UnlikelihoodLoss(Scores scores, int label)
    {
        using var scope = NewDisposeScope();
        var (sum, count) = UnlikelihoodTerms(scores, label);
        return (sum / count).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// T-Few's unlikelihood terms, as the reference computes them (r-three/t-few, <c>src/models/EncoderDecoder.py</c>):
    /// <c>unlikely_loss = -torch.log(1 - torch.exp(cand_loglikely) + 1e-2).sum() / (cand_loglikely != -100).sum()</c>,
    /// where <c>cand_loglikely</c> holds each token's log-likelihood, with the right choice and the padding set to −100.
    /// Returns the sum over the wrong choices' real tokens and their count; the reference divides the batch's sum by the
    /// batch's count (the trainer does the same over a step's examples). The reference's sum also runs over the entries
    /// set to −100, each adding −log(1.01) with no gradient: a constant that depends on how the batch was padded, left out
    /// here, so the gradients are the reference's and the value is its token mean over real tokens.
    /// </summary>
    public static (Tensor Sum, long Count) UnlikelihoodTerms(Scores scores, int label)
    {
        CheckLabel(scores, label);
        using var scope = NewDisposeScope();
        var wrong = ones(scores.Mask.shape[0], dtype: scores.Mask.dtype, device: scores.Mask.device);
        wrong[label] = 0;
        var mask = scores.Mask * wrong.unsqueeze(1);
        var terms = (1 - scores.TokenLogProbs.exp() + 1e-2).log().neg();
        var sum = (terms * mask).sum();
        return (sum.MoveToOuterDisposeScope(), (long)mask.sum().item<float>());
    }

    /// <summary>Rank classification: the index of the choice with the highest length-normalised score.</summary>
    public static int Predict(Scores scores)
    {
        using var scope = NewDisposeScope();
        return (int)scores.LengthNormalized.argmax().item<long>();
    }

    private static void CheckLabel(Scores scores, int label)
    {
        if (label < 0 || label >= scores.Mask.shape[0])
            throw new PeftDslException($"label {label} is not one of the {scores.Mask.shape[0]} choices (0 … {scores.Mask.shape[0] - 1})");
    }
}
