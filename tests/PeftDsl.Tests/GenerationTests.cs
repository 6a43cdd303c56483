using PeftDsl.Errors;
using PeftDsl.Generation;
using PeftDsl.Models.Gpt2;
using PeftDsl.Models.Llama;
using PeftDsl.Models.T5;
using Xunit;
using static TorchSharp.torch;

namespace PeftDsl.Tests;

/// <summary>Generation for both model kinds: the cache, batching and sampling change speed, never the tokens.</summary>
public sealed class GenerationTests
{
    private static readonly long[][] Prompts = [[5, 17, 301, 42, 7], [99, 3], [250, 251, 252]];

    public static TheoryData<string> Families => ["gpt2", "llama", "t5", "mt5"];

    [Theory]
    [MemberData(nameof(Families))]
    public void CachedDecodingGivesTheTokensOfFullRecomputation(string family)
    {
        using var model = (nn.Module)Load(family);
        var greedy = new GenerationOptions { MaxNewTokens = 12 };
        var cached = TextGenerator.Generate((IGenerativeModel)model, Prompts, greedy);
        var recomputed = TextGenerator.Generate((IGenerativeModel)model, Prompts, greedy with { UseCache = false });
        Assert.Equal(recomputed, cached);
        Assert.All(cached, tokens => Assert.Equal(12, tokens.Length));
    }

    [Theory]
    [MemberData(nameof(Families))]
    public void BatchedDecodingGivesTheTokensOfOnePromptAtATime(string family)
    {
        using var model = (nn.Module)Load(family);
        var greedy = new GenerationOptions { MaxNewTokens = 10 };
        var batched = TextGenerator.Generate((IGenerativeModel)model, Prompts, greedy);
        for (var i = 0; i < Prompts.Length; i++)
            Assert.Equal(TextGenerator.Generate((IGenerativeModel)model, [Prompts[i]], greedy)[0], batched[i]);
    }

    /// <summary>An oracle independent of the decoding sessions: each greedy token is the argmax of a plain
    /// forward pass over everything so far.</summary>
    [Fact]
    public void GreedyTokensAreTheArgmaxOfFullForwardPasses()
    {
        using var gpt2 = Gpt2LMHeadModel.FromPretrained(Fixtures.Base("gpt2"));
        using var t5 = T5ForConditionalGeneration.FromPretrained(Fixtures.Base("t5"));
        var prompt = Prompts[0];
        var causal = TextGenerator.Generate(gpt2, [prompt], new GenerationOptions { MaxNewTokens = 6 })[0];
        var seq2seq = TextGenerator.Generate(t5, [prompt], new GenerationOptions { MaxNewTokens = 6 })[0];

        using var _ = no_grad();
        gpt2.eval();
        t5.eval();
        var sequence = prompt.ToList();
        var decoder = new List<long> { t5.DecoderStartTokenId };
        for (var step = 0; step < 6; step++)
        {
            sequence.Add(gpt2.Forward(tensor(sequence.ToArray()).unsqueeze(0)).Logits[0, -1].argmax().item<long>());
            decoder.Add(t5.Forward(tensor(prompt).unsqueeze(0), null, tensor(decoder.ToArray()).unsqueeze(0)).Logits[0, -1].argmax().item<long>());
        }
        Assert.Equal(sequence.Skip(prompt.Length), causal);
        Assert.Equal(decoder.Skip(1), seq2seq);
    }

    [Fact]
    public void SamplingIsReproducibleUnderASeedAndNarrowFiltersAreGreedy()
    {
        using var model = LlamaForCausalLM.FromPretrained(Fixtures.Base("llama"));
        var sample = new GenerationOptions { MaxNewTokens = 16, DoSample = true, Temperature = 1.5, Seed = 7 };
        var first = TextGenerator.Generate(model, Prompts, sample);
        Assert.Equal(first, TextGenerator.Generate(model, Prompts, sample));
        Assert.NotEqual(first, TextGenerator.Generate(model, Prompts, sample with { Seed = 8 }));

        var greedy = TextGenerator.Generate(model, Prompts, new GenerationOptions { MaxNewTokens = 16 });
        Assert.Equal(greedy, TextGenerator.Generate(model, Prompts, sample with { TopK = 1 }));
        Assert.Equal(greedy, TextGenerator.Generate(model, Prompts, sample with { TopP = 1e-6 }));
    }

    [Fact]
    public void TopKAndTopPKeepOnlyTheirTokens()
    {
        var logits = tensor(new float[,] { { 4f, 3f, 2f, 1f, 0f } });
        using var topK = new TokenSampler(new GenerationOptions { DoSample = true, TopK = 2, Seed = 1 }, CPU);
        // softmax mass of [4, 3, 2, ...] is 0.64, 0.24, 0.09, …: top-p 0.8 keeps the first two.
        using var topP = new TokenSampler(new GenerationOptions { DoSample = true, TopP = 0.8, Seed = 1 }, CPU);
        var drawnK = Enumerable.Range(0, 200).Select(_ => topK.Pick(logits).item<long>()).ToHashSet();
        var drawnP = Enumerable.Range(0, 200).Select(_ => topP.Pick(logits).item<long>()).ToHashSet();
        Assert.Equal([0L, 1L], drawnK.Order());
        Assert.Equal([0L, 1L], drawnP.Order());
    }

    [Fact]
    public void GenerationStopsAtAStopTokenAndKeepsIt()
    {
        using var model = Gpt2LMHeadModel.FromPretrained(Fixtures.Base("gpt2"));
        var free = TextGenerator.Generate(model, [Prompts[0]], new GenerationOptions { MaxNewTokens = 8 })[0];
        var stopped = TextGenerator.Generate(model, [Prompts[0]], new GenerationOptions { MaxNewTokens = 8, StopTokens = [free[2]] })[0];
        Assert.Equal(free[..(Array.IndexOf(free, free[2]) + 1)], stopped);
        Assert.Empty(TextGenerator.Generate(model, [Prompts[0]], new GenerationOptions { MaxNewTokens = 0 })[0]);
    }

    [Theory]
    [InlineData(-1, false, 1.0, 0, 1.0, "max new tokens must be 0 or more, got -1")]
    [InlineData(4, true, 0.0, 0, 1.0, "temperature must be a positive number, got 0")]
    [InlineData(4, false, 1.0, -2, 1.0, "top-k must be 0 (off) or positive, got -2")]
    [InlineData(4, false, 1.0, 0, 0.0, "top-p must be in (0, 1], got 0")]
    [InlineData(4, false, 1.0, 0, 1.5, "top-p must be in (0, 1], got 1.5")]
    public void BadOptionsAreRejectedWithTheValue(int max, bool sample, double temperature, int topK, double topP, string message)
    {
        using var model = Gpt2LMHeadModel.FromPretrained(Fixtures.Base("gpt2"));
        var options = new GenerationOptions { MaxNewTokens = max, DoSample = sample, Temperature = temperature, TopK = topK, TopP = topP };
        var e = Assert.Throws<PeftDslException>(() => TextGenerator.Generate(model, Prompts, options));
        Assert.Equal("generation: " + message, e.Message);
    }

    [Fact]
    public void BadPromptsAreRejected()
    {
        using var model = Gpt2LMHeadModel.FromPretrained(Fixtures.Base("gpt2"));
        var options = new GenerationOptions();
        Assert.Equal("generation: no prompts given", Assert.Throws<PeftDslException>(() => TextGenerator.Generate(model, [], options)).Message);
        Assert.Equal("generation: prompt 2 is empty", Assert.Throws<PeftDslException>(() => TextGenerator.Generate(model, [[1], []], options)).Message);
        Assert.Equal("generation: prompt 1 has token id 512 outside the model's vocabulary of 512",
            Assert.Throws<PeftDslException>(() => TextGenerator.Generate(model, [[1, 512]], options)).Message);
    }

    /// <summary>Checked before the first step: a run past GPT-2's 64 learned positions, with a prompt task's virtual
    /// tokens counted.</summary>
    [Fact]
    public void ImpossibleRunsAreRefusedBeforeTheFirstStep()
    {
        using var model = Gpt2LMHeadModel.FromPretrained(Fixtures.Base("gpt2"));
        var steps = 0;
        var options = new GenerationOptions { MaxNewTokens = 60, OnStep = _ => steps++ };
        var e = Assert.Throws<PeftDslException>(() => TextGenerator.Generate(model, [[1, 2, 3, 4, 5]], options));
        Assert.Equal("generation: the longest prompt (5 tokens) plus 60 new tokens exceed the model's 64 positions", e.Message);
        model.Prompts.Add("task", new PeftDsl.Peft.Prompts.PromptConfig { Method = PeftDsl.Peft.Prompts.PromptMethod.PromptTuning, NumVirtualTokens = 5 });
        e = Assert.Throws<PeftDslException>(() => TextGenerator.Generate(model, [[1, 2, 3]], options with { MaxNewTokens = 57 }));
        Assert.Equal("generation: the longest prompt (3 tokens) after 5 virtual tokens plus 57 new tokens exceed the model's 64 positions", e.Message);
        Assert.Equal(0, steps);
    }

    /// <summary>A rotary model (the Llama fixture's max_position_embeddings is 64) is not taken past the positions it
    /// was trained for unless asked; asked, it goes on. GPT-2's learned positions cannot be passed even when asked, and
    /// T5's relative positions have no limit. Before, a Llama generated any number of tokens without a word.</summary>
    [Fact]
    public void RotaryModelsStopAtTheirTrainedPositionsUnlessAsked()
    {
        using var llama = LlamaForCausalLM.FromPretrained(Fixtures.Base("llama"));
        Assert.Equal(64, llama.ContextLength);
        Assert.Null(llama.PositionLimit);
        var options = new GenerationOptions { MaxNewTokens = 62 };
        var e = Assert.Throws<PeftDslException>(() => TextGenerator.Generate(llama, [[1, 2, 3]], options));
        Assert.StartsWith("generation: the longest prompt (3 tokens) plus 62 new tokens exceed the 64 positions the model was trained for (max_position_embeddings)", e.Message);
        Assert.Equal(62, TextGenerator.Generate(llama, [[1, 2, 3]], options with { IgnoreMaxPositions = true })[0].Length);
        Assert.Equal(61, TextGenerator.Generate(llama, [[1, 2, 3]], options with { MaxNewTokens = 61 })[0].Length);

        using var gpt2 = Gpt2LMHeadModel.FromPretrained(Fixtures.Base("gpt2"));
        Assert.Throws<PeftDslException>(() => TextGenerator.Generate(gpt2, [[1, 2, 3]], options with { IgnoreMaxPositions = true }));
        using var t5 = T5ForConditionalGeneration.FromPretrained(Fixtures.Base("t5"));
        Assert.Null(t5.ContextLength);
        Assert.Equal(70, TextGenerator.Generate(t5, [[1, 2, 3]], new GenerationOptions { MaxNewTokens = 70 })[0].Length);
    }

    /// <summary>A vocabulary limit (a tokenizer smaller than the model's padded vocabulary) is never exceeded, and
    /// below it the greedy choice is the plain argmax over the allowed ids.</summary>
    [Fact]
    public void AVocabularyLimitKeepsEveryTokenDecodable()
    {
        using var model = Gpt2LMHeadModel.FromPretrained(Fixtures.Base("gpt2"));
        var free = TextGenerator.Generate(model, Prompts, new GenerationOptions { MaxNewTokens = 6 });
        var limited = TextGenerator.Generate(model, Prompts, new GenerationOptions { MaxNewTokens = 6, VocabLimit = 200 });
        Assert.All(limited, row => Assert.All(row, id => Assert.InRange(id, 0, 199)));
        Assert.Contains(free, row => row.Any(id => id >= 200));   // the limit changed something, so the test can fail
        using var noGrad = no_grad();
        var first = model.Logits(tensor(Prompts[0]).unsqueeze(0))[0, -1].narrow(0, 0, 200).argmax().item<long>();
        Assert.Equal(first, limited[0][0]);
    }

    [Fact]
    public void DefaultsComeFromTheCheckpointFolder()
    {
        var t5 = GenerationDefaults.FromFolder(Fixtures.Base("t5"));
        Assert.Equal([1L], t5.EosTokenIds);
        Assert.Equal(0, t5.PadTokenId);
        Assert.Equal(0, t5.DecoderStartTokenId);
        var gpt2 = GenerationDefaults.FromFolder(Fixtures.Base("gpt2"));
        Assert.Equal([50256L], gpt2.EosTokenIds);
        var options = gpt2.ApplyTo(new GenerationOptions { MaxNewTokens = 4 }, padGiven: false);
        Assert.Equal(50256, options.PadTokenId);
        using var model = Gpt2LMHeadModel.FromPretrained(Fixtures.Base("gpt2"));
        Assert.Equal(TextGenerator.Generate(model, [Prompts[1]], options)[0], TextGenerator.Generate(model, Prompts, options)[1]);
    }

    private static IGenerativeModel Load(string family) => family switch
    {
        "gpt2" => Gpt2LMHeadModel.FromPretrained(Fixtures.Base("gpt2")),
        "llama" => LlamaForCausalLM.FromPretrained(Fixtures.Base("llama")),
        "t5" => T5ForConditionalGeneration.FromPretrained(Fixtures.Base("t5")),
        _ => T5ForConditionalGeneration.FromPretrained(Fixtures.Base("mt5")),
    };
}
