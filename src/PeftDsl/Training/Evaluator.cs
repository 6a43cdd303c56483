using PeftDsl.Data;
using PeftDsl.Generation;
using PeftDsl.Runtime;
using PeftDsl.Tokenization;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftDsl.Training;

/// <summary>Held-out loss and perplexity over answer tokens, and exact match of greedy answers.</summary>
public static class Evaluator
{
    /// <summary>Evaluates in eval mode without gradients (the model's mode is restored after): mean loss over answer tokens
    /// (NaN when there are none), its perplexity, the exact-match share of greedy answers, and rank accuracy over the
    /// multiple-choice examples, if any.</summary>
    /// <param name="batchSize">Examples per forward batch.</param>
    /// <param name="adapterNames">Per example, the adapter or prompt task its row runs; null for the active ones.</param>
    /// <param name="ranks">With several ranks each evaluates every N-th batch (the batches a single process makes) and
    /// the sums are combined, so every rank returns the same result; null: this process alone.</param>
    public static EvalResult Run(LanguageModel model, TextTokenizer tokenizer, IReadOnlyList<TokenizedExample> examples, int batchSize,
        IReadOnlyList<string>? adapterNames = null, Distributed.ICommunicator? ranks = null)
    {
        ranks ??= Distributed.SingleProcess.Instance;
        var wasTraining = model.training;
        model.eval();
        try
        {
            var device = model.parameters().First().device;
            double lossSum = 0;
            long tokens = 0;
            var correct = 0;
            using var noGrad = no_grad();
            using var table = model.Prompts.InferenceTable();   // each task's encoder runs once for the whole pass
            for (var start = ranks.Rank * batchSize; start < examples.Count; start += batchSize * ranks.Size)
            {
                using var scope = NewDisposeScope();
                var chunk = examples.Skip(start).Take(batchSize).ToList();
                var rows = adapterNames?.Skip(start).Take(chunk.Count).ToList();
                using var batch = model is CausalLanguageModel ? Batch.Causal(chunk, answerOnly: true, device) : Batch.Seq2Seq(chunk, ((Seq2SeqLanguageModel)model).DecoderStartTokenId, device);
                lossSum += Trainer.Loss(model, batch, rows).item<float>() * batch.LossTokens;
                tokens += batch.LossTokens;
                correct += ExactMatches(model, tokenizer, chunk, rows);
            }
            // Multiple choice: rank classification, each choice scored and the best one taken (T-Few).
            var withChoices = examples.Select((e, i) => (e, i)).Where(x => x.e.Choices is not null).ToList();
            var ranked = withChoices.Where((_, j) => j % ranks.Size == ranks.Rank).Count(x =>
            {
                using var scope = NewDisposeScope();
                using var scores = MultipleChoice.Score(model, x.e.Prompt, x.e.Choices!, adapterNames?[x.i]);
                return MultipleChoice.Predict(scores) == x.e.Label;
            });
            var sums = new[] { lossSum, tokens, correct, ranked };
            ranks.AllReduceSum(sums);
            (lossSum, tokens, correct, ranked) = (sums[0], (long)sums[1], (int)sums[2], (int)sums[3]);
            var loss = tokens == 0 ? double.NaN : lossSum / tokens;
            double? rank = withChoices.Count > 0 ? (double)ranked / withChoices.Count : null;
            return new EvalResult(loss, Math.Exp(loss), (double)correct / examples.Count, examples.Count) { RankAccuracy = rank };
        }
        finally
        {
            if (wasTraining) model.train();
        }
    }

    /// <summary>How many greedy answers equal the reference answer, compared as text with outer spaces trimmed.</summary>
    private static int ExactMatches(LanguageModel model, TextTokenizer tokenizer, List<TokenizedExample> chunk, List<string>? rows)
    {
        var options = new GenerationOptions
        {
            MaxNewTokens = chunk.Max(e => e.Answer.Length) + 2,
            StopTokens = tokenizer.Eos is { } eos ? [eos] : [],
            PadTokenId = 0,
            AdapterNames = rows,
            VocabLimit = tokenizer.VocabSize,   // a padded model vocabulary: only ids the tokenizer can decode
        };
        var answers = TextGenerator.Generate(model, chunk.Select(e => e.Prompt).ToList(), options);
        return chunk.Zip(answers).Count(pair => tokenizer.Decode(pair.Second).Trim() == tokenizer.Decode(pair.First.Answer).Trim());
    }
}
