using PeftDsl.Errors;
using PeftDsl.Models.Gpt2;
using PeftDsl.Models.T5;
using PeftDsl.Peft;
using PeftDsl.Runtime;
using PeftDsl.Data;
using PeftDsl.Training;
using Xunit;
using static TorchSharp.torch;

namespace PeftDsl.Tests.Training;

/// <summary>The T-Few losses and rank classification against a hand computation on a tiny example.</summary>
[Collection(GlobalRandomness.Name)]
public sealed class MultipleChoiceTests
{
    private static readonly long[] Prompt = [5, 17, 42];
    private static readonly long[][] Choices = [[7, 8], [9], [10, 11, 12]];

    /// <summary>Each choice's token log-probabilities from its own forward pass, as plain numbers.</summary>
    private static double[][] ByHand(LanguageModel model)
    {
        var result = new double[Choices.Length][];
        for (var j = 0; j < Choices.Length; j++)
        {
            using var scope = NewDisposeScope();
            var choice = Choices[j];
            Tensor logits;
            int first;
            if (model is CausalLanguageModel causal)
            {
                logits = causal.Forward(tensor(Prompt.Concat(choice).ToArray()).unsqueeze(0)).Logits[0];
                first = Prompt.Length - 1;                      // the position predicting the choice's first token
            }
            else
            {
                var s2s = (Seq2SeqLanguageModel)model;
                var decoder = new[] { s2s.DecoderStartTokenId }.Concat(choice.Take(choice.Length - 1)).ToArray();
                logits = s2s.Forward(tensor(Prompt).unsqueeze(0), null, tensor(decoder).unsqueeze(0)).Logits[0];
                first = 0;
            }
            var logSoftmax = logits.to(ScalarType.Float64).log_softmax(-1);
            result[j] = choice.Select((token, t) => logSoftmax[first + t, token].item<double>()).ToArray();
        }
        return result;
    }

    [Theory]
    [InlineData("gpt2")]
    [InlineData("t5")]
    public void TheLossesAndTheRankingAreTheHandComputation(string family)
    {
        using var model = family == "gpt2" ? (LanguageModel)Gpt2LMHeadModel.FromPretrained(Fixtures.Base("gpt2")) : T5ForConditionalGeneration.FromPretrained(Fixtures.Base("t5"));
        model.eval();
        using var noGrad = no_grad();
        var hand = ByHand(model);
        var beta = hand.Select(lp => lp.Average()).ToArray();                       // length-normalised scores
        const int label = 2;
        var lnLoss = -(beta[label] - Math.Log(beta.Sum(Math.Exp)));
        var wrong = hand.Where((_, j) => j != label).SelectMany(lp => lp).ToArray();
        var ulLoss = -wrong.Average(lp => Math.Log(1 - Math.Exp(lp) + 1e-2));

        using var scores = MultipleChoice.Score(model, Prompt, Choices);
        var ours = scores.LengthNormalized.to(ScalarType.Float64).data<double>().ToArray();
        for (var j = 0; j < beta.Length; j++) Assert.Equal(beta[j], ours[j], 1e-5);
        Assert.Equal(lnLoss, MultipleChoice.LengthNormalizedLoss(scores, label).item<float>(), 1e-5);
        Assert.Equal(ulLoss, MultipleChoice.UnlikelihoodLoss(scores, label).item<float>(), 1e-5);
        Assert.Equal(Array.IndexOf(beta, beta.Max()), MultipleChoice.Predict(scores));

        var e = Assert.Throws<PeftDslException>(() => MultipleChoice.LengthNormalizedLoss(scores, 3));
        Assert.Contains("label 3 is not one of the 3 choices", e.Message);
    }

    /// <summary>T-Few's unlikelihood term, −log(1 − exp(log p) + 0.01) over the wrong choices' real tokens, against values
    /// worked out by hand: wrong tokens with p = 0.5, 0.25 (choice 0), 0.1, 0.2, 0.3 (choice 2); choice 1 is right.</summary>
    [Fact]
    public void TheUnlikelihoodTermsAreTheReferenceFormula()
    {
        using var scope = NewDisposeScope();
        var p = tensor(new float[,] { { 0.5f, 0.25f, 1f }, { 0.9f, 1f, 1f }, { 0.1f, 0.2f, 0.3f } });
        var mask = tensor(new float[,] { { 1, 1, 0 }, { 1, 0, 0 }, { 1, 1, 1 } });
        using var scores = new MultipleChoice.Scores(p.log(), mask);
        var (sum, count) = MultipleChoice.UnlikelihoodTerms(scores, label: 1);
        // −ln 0.51 − ln 0.76 − ln 0.91 − ln 0.81 − ln 0.71 = 0.673345 + 0.274437 + 0.094311 + 0.210721 + 0.342490
        Assert.Equal(1.5953034, sum.item<float>(), 1e-5);
        Assert.Equal(5, count);
        Assert.Equal(0.3190607, MultipleChoice.UnlikelihoodLoss(scores, 1).item<float>(), 1e-5);
        // A token the model is sure of (p = 1) stays finite: −ln 0.01.
        using var sure = new MultipleChoice.Scores(tensor(new float[,] { { 0f }, { -1f } }), ones(2, 1));
        Assert.Equal(4.6051702, MultipleChoice.UnlikelihoodLoss(sure, 1).item<float>(), 1e-5);
    }

    /// <summary>Both losses train an adapter: their gradients reach its parameters.</summary>
    [Fact]
    public void TheLossesTrainAnAdapter()
    {
        using var model = Gpt2LMHeadModel.FromPretrained(Fixtures.Base("gpt2"));
        manual_seed(3);
        model.Ia3.Add("a", new Peft.Ia3.Ia3Config { InitIa3Weights = false });
        using var scope = NewDisposeScope();
        using var scores = MultipleChoice.Score(model, Prompt, Choices);
        (MultipleChoice.LengthNormalizedLoss(scores, 0) + MultipleChoice.UnlikelihoodLoss(scores, 0)).backward();
        Assert.All(model.TrainableParameters(), p => Assert.True(p.Parameter.grad is not null && p.Parameter.grad.abs().sum().item<float>() > 0, p.Name));
    }
}

/// <summary>Multiple-choice data through the data layer, the trainer and the CLI.</summary>
[Collection(GlobalRandomness.Name)]
public sealed class MultipleChoiceTrainingTests
{
    private static List<TokenizedExample> Examples() =>
    [
        new("t", [1, 40, 41], [50, 2], "x:1", [[50, 2], [60, 61, 2], [70, 2]], 0),
        new("t", [1, 42, 43, 44], [61, 2], "x:2", [[60, 2], [61, 2]], 1),
    ];

    /// <summary>With --tfew the step's loss is the language-modelling loss plus the mean of each example's
    /// length-normalised loss and the unlikelihood loss over all the step's wrong-choice tokens.</summary>
    [Fact]
    public void TheTFewStepAddsTheChoiceLosses()
    {
        var data = Examples();
        var options = new TrainerOptions { MaxSteps = 1, BatchSize = 2, LearningRate = 1e-3, LogEvery = 1 };
        using var model = TrainerTests.Model();
        var plain = new Trainer(model, DataTests.LlamaTokenizer(), data, null, options, null).Backward([data], CPU).item<float>();
        var tfew = new Trainer(model, DataTests.LlamaTokenizer(), data, null, options with { TFewLosses = true }, null).Backward([data], CPU).item<float>();
        // L_LN is averaged over the examples; L_UL is one token mean over both examples' wrong choices (3 + 2 tokens in
        // the first, 2 in the second), as the reference divides a batch's sum by the batch's count.
        double extra = 0, unlikely = 0;
        long count = 0;
        foreach (var e in data)
        {
            using var scores = MultipleChoice.Score(model, e.Prompt, e.Choices!);
            extra += MultipleChoice.LengthNormalizedLoss(scores, e.Label).item<float>() / data.Count;
            var (sum, n) = MultipleChoice.UnlikelihoodTerms(scores, e.Label);
            unlikely += sum.item<float>();
            count += n;
        }
        Assert.Equal(7, count);
        extra += unlikely / count;
        Assert.Equal(plain + extra, tfew, 1e-4);
        var eval = Evaluator.Run(model, DataTests.LlamaTokenizer(), data, 2);
        Assert.NotNull(eval.RankAccuracy);
    }

    [Theory]
    [InlineData("{\"input\": \"q\", \"choices\": [\"a\", \"b\"], \"label\": 1}", null)]
    [InlineData("{\"input\": \"q\", \"choices\": [\"a\"], \"label\": 0}", "\"choices\" must be a list of two or more non-empty strings")]
    [InlineData("{\"input\": \"q\", \"choices\": [\"a\", \"b\"]}", "needs \"label\", the index of the right choice")]
    [InlineData("{\"input\": \"q\", \"choices\": [\"a\", \"b\"], \"label\": 2}", "\"label\" 2 is not an index of the 2 choices (0 … 1)")]
    public void MultipleChoiceRecordsAreReadOrRefusedWithTheirLine(string line, string? error)
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("mc.jsonl"), line + "\n");
        if (error is null)
        {
            var example = Assert.Single(Data.JsonlDataset.Read(dir.File("mc.jsonl"), Data.DataFormat.InputOutput));
            Assert.Equal("b", example.Answer);
            Assert.Equal(["a", "b"], example.Choices);
            return;
        }
        var e = Assert.Throws<PeftDslException>(() => Data.JsonlDataset.Read(dir.File("mc.jsonl"), Data.DataFormat.InputOutput));
        Assert.StartsWith($"{dir.File("mc.jsonl")}:1: ", e.Message);
        Assert.Contains(error, e.Message);
    }
}
