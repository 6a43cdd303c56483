using PeftDsl.Errors;
using PeftDsl.Models.Gpt2;
using PeftDsl.Models.Llama;
using PeftDsl.Models.T5;
using PeftDsl.Peft;
using PeftDsl.Peft.Prompts;
using PeftDsl.Runtime;
using PeftDsl.Tests.Lora;
using PeftDsl.Tests.Training;
using PeftDsl.Training;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace PeftDsl.Tests.Prompts;

/// <summary>Prompt learning against the plain math: mixed-task batches, cached decoding, the prompt table's isolation,
/// freezing an encoder, files and refusals.</summary>
[Collection(GlobalRandomness.Name)]
public sealed class PromptLearningTests
{
    private static readonly PromptConfig Tuning = new() { Method = PromptMethod.PromptTuning, NumVirtualTokens = 3 };
    private static readonly PromptConfig PTuning = new() { Method = PromptMethod.PTuning, NumVirtualTokens = 5, EncoderHiddenSize = 16 };
    private static readonly PromptConfig Prefix = new() { Method = PromptMethod.PrefixTuning, NumVirtualTokens = 4 };

    /// <summary>Rows of different tasks (3 and 5 virtual tokens, and none) in one batch equal each row run alone, in
    /// the real positions' logits and in every task parameter's gradient.</summary>
    [Theory]
    [InlineData("gpt2")]
    [InlineData("llama")]
    public void AMixedTaskBatchEqualsEachRowAlone(string family)
    {
        using var model = (CausalLanguageModel)(family == "gpt2" ? Gpt2LMHeadModel.FromPretrained(Fixtures.Base("gpt2")) : LlamaForCausalLM.FromPretrained(Fixtures.Base("llama")));
        manual_seed(2);
        model.Prompts.Add("a", Tuning);
        model.Prompts.Add("b", PTuning);
        using var scope = NewDisposeScope();
        var (ids, mask) = LoraMathTests.Batch();
        string[] rows = ["a", "b", AdapterRouting.BaseRow];
        long[] counts = [3, 5, 0];
        var t = ids.shape[1];
        var weights = randn(3, t, model.VocabSize, generator: new Generator(3));
        model.train();

        var mixed = model.Forward(ids, mask, adapterNames: rows).Logits;   // (3, 5 + T, V)
        Assert.Equal(5 + t, mixed.shape[1]);
        var real = mixed.narrow(1, 5, t);
        (real * weights * mask.unsqueeze(-1)).sum().backward();
        var mixedGrads = Grads(model);

        var aloneGrads = new Dictionary<string, Tensor>();
        for (var i = 0; i < 3; i++)
        {
            model.zero_grad();
            var alone = model.Forward(ids.narrow(0, i, 1), mask.narrow(0, i, 1), adapterNames: [rows[i]]).Logits;
            Assert.Equal(counts[i] + t, alone.shape[1]);
            var aloneReal = alone.narrow(1, counts[i], t);
            var where = mask.narrow(0, i, 1).unsqueeze(-1).to(ScalarType.Bool).expand_as(aloneReal);
            Assert.True(aloneReal.masked_select(where).allclose(real.narrow(0, i, 1).masked_select(where), rtol: 0, atol: 1e-5), $"row {i}");
            if (counts[i] == 0) continue;   // the base row has nothing trainable
            (aloneReal * weights.narrow(0, i, 1) * mask.narrow(0, i, 1).unsqueeze(-1)).sum().backward();
            foreach (var (name, g) in Grads(model).Where(g => g.Key.StartsWith($"prompt_encoder.{rows[i]}.", StringComparison.Ordinal)))
                aloneGrads[name] = g;
        }
        Assert.Equal(mixedGrads.Keys.Order(), aloneGrads.Keys.Order());
        foreach (var (name, g) in mixedGrads) Assert.True(g.allclose(aloneGrads[name], rtol: 1e-4, atol: 1e-6), name);
    }

    /// <summary>An encoder-decoder batch with two tasks: the decoder logits of each row equal the row alone.</summary>
    [Fact]
    public void AMixedTaskBatchOnT5EqualsEachRowAlone()
    {
        using var model = T5ForConditionalGeneration.FromPretrained(Fixtures.Base("t5"));
        manual_seed(2);
        model.Prompts.Add("a", Tuning);
        model.Prompts.Add("b", PTuning with { EncoderType = PromptEncoderType.Lstm });
        using var scope = NewDisposeScope();
        var (ids, mask) = LoraMathTests.Batch();
        var decoder = randint(2, 500, [3, 4], generator: new Generator(9));
        string[] rows = ["b", "a", AdapterRouting.BaseRow];
        model.eval();
        var mixed = model.Forward(ids, mask, decoder, adapterNames: rows).Logits;
        for (var i = 0; i < 3; i++)
        {
            var alone = model.Forward(ids.narrow(0, i, 1), mask.narrow(0, i, 1), decoder.narrow(0, i, 1), adapterNames: [rows[i]]).Logits;
            Assert.True(alone.allclose(mixed.narrow(0, i, 1), rtol: 0, atol: 1e-5), $"row {i}");
        }
    }

    /// <summary>Decoding with the cache equals recomputing everything: the prompt is inserted once, not per step.</summary>
    [Theory]
    [InlineData("prompt")]
    [InlineData("prefix")]
    public void CachedDecodingEqualsOnePass(string method)
    {
        using var model = LlamaForCausalLM.FromPretrained(Fixtures.Base("llama"));
        manual_seed(4);
        model.Prompts.Add("task", method == "prompt" ? PTuning : Prefix);
        model.eval();
        using var scope = NewDisposeScope();
        var (ids, mask) = LoraMathTests.Batch(rows: 2, length: 8, padLast: false);
        using var noGrad = no_grad();
        var whole = model.Logits(ids, mask);                        // (B, P + 8, V) or (B, 8, V)
        var start = whole.shape[1] - 8;
        using var cache = new KvCache();
        var first = model.Logits(ids.narrow(1, 0, 5), mask.narrow(1, 0, 5), cache);
        cache.Advance(5);
        Assert.True(first.allclose(whole.narrow(1, 0, start + 5), rtol: 0, atol: 1e-5));
        for (var step = 5; step < 8; step++)
        {
            var next = model.Logits(ids.narrow(1, step, 1), mask.narrow(1, 0, step + 1), cache);
            cache.Advance(1);
            Assert.True(next.allclose(whole.narrow(1, start + step, 1), rtol: 0, atol: 1e-5), $"step {step}");
        }
    }

    /// <summary>Decoding sessions (what generation and exact-match evaluation use) run the prompt: with and without
    /// the cache, for the active task and for a mixed batch of tasks, each step's logits equal a full forward pass
    /// over the tokens so far, and differ from the base model's.</summary>
    [Theory]
    [InlineData("gpt2", true)]
    [InlineData("gpt2", false)]
    [InlineData("t5", true)]
    [InlineData("t5", false)]
    public void DecodingSessionsRunTheVirtualPrompt(string family, bool useCache)
    {
        using var model = Load(family);
        manual_seed(14);
        model.Prompts.Add("a", PTuning);
        model.Prompts.Add("b", Tuning with { NumVirtualTokens = 2 });
        model.eval();
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var prompts = tensor(new long[,] { { 5, 17, 42, 9 }, { 5, 300, 7, 8 } });
        var mask = ones_like(prompts);
        var options = new Generation.GenerationOptions { UseCache = useCache };

        Steps(model, prompts, mask, options, ["a", "a"]);
        Steps(model, prompts, mask, options with { AdapterNames = ["b", "a"] }, ["b", "a"]);
        model.Prompts.SetActive(null);
        using var baseSession = model.BeginDecoding(prompts, mask, options);
        Assert.False(baseSession.Next(null).allclose(Reference(model, prompts, [], ["a", "a"]), rtol: 0, atol: 1e-4));
    }

    /// <summary>Prefix tuning on T5 (peft puts it in the decoder's self-attention): decoding sessions with and without
    /// the cache equal full passes, for one task and for a batch mixing a 4-token and a 2-token prefix, and the encoder
    /// output is the base model's.</summary>
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void APrefixOnT5DecodesLikeFullPasses(bool useCache)
    {
        using var model = T5ForConditionalGeneration.FromPretrained(Fixtures.Base("t5"));
        manual_seed(15);
        model.Prompts.Add("a", Prefix);
        model.Prompts.Add("b", Prefix with { NumVirtualTokens = 2, PrefixProjection = true, EncoderHiddenSize = 8 });
        model.eval();
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var prompts = tensor(new long[,] { { 5, 17, 42, 9 }, { 5, 300, 7, 8 } });
        var mask = ones_like(prompts);
        var options = new Generation.GenerationOptions { UseCache = useCache };
        Steps(model, prompts, mask, options, ["a", "a"]);
        Steps(model, prompts, mask, options with { AdapterNames = ["b", "a"] }, ["b", "a"]);
        Assert.True(Same(model.Encode(prompts, mask, model.Route(["a", "b"], prompts)), model.Encode(prompts, mask, AdapterRouting.None)));
    }

    /// <summary>NeMo's inference table: inside <c>InferenceTable()</c> the encoder's rows are computed once and reused
    /// (a change to the encoder made inside is not seen, by design), outputs equal the plain path, a call with
    /// gradients computes afresh, and ending the scope drops the rows.</summary>
    [Fact]
    public void TheInferenceTableComputesEachTasksRowsOnce()
    {
        using var model = Gpt2LMHeadModel.FromPretrained(Fixtures.Base("gpt2"));
        manual_seed(16);
        model.Prompts.Add("a", PTuning);
        model.eval();
        using var scope = NewDisposeScope();
        var (ids, mask) = LoraMathTests.Batch();
        Tensor plain, before, stale, trained, after;
        using (no_grad()) plain = model.Logits(ids, mask);
        var weight = ((PTuningEncoder)model.Prompts.Task("a")).embedding.weight;
        using (model.Prompts.InferenceTable())
        {
            using (no_grad())
            {
                before = model.Logits(ids, mask);
                weight.add_(0.5f);
                stale = model.Logits(ids, mask);
            }
            trained = model.Logits(ids, mask).detach();   // with gradients: computed afresh
        }
        using (no_grad()) after = model.Logits(ids, mask);
        Assert.True(Same(before, plain));
        Assert.True(Same(stale, before));
        Assert.False(trained.allclose(before, rtol: 0, atol: 1e-4));
        Assert.True(after.allclose(trained, rtol: 0, atol: 1e-6));
    }

    /// <summary>Three decoding steps, each against <see cref="Reference"/>.</summary>
    private static void Steps(LanguageModel model, Tensor prompts, Tensor mask, Generation.GenerationOptions options, string[] tasks)
    {
        using var session = model.BeginDecoding(prompts, mask, options);
        var decoded = new List<Tensor>();
        Tensor? appended = null;
        for (var step = 0; step < 3; step++)
        {
            var logits = session.Next(appended);                                          // (B, V)
            Assert.True(logits.allclose(Reference(model, prompts, decoded, tasks), rtol: 0, atol: 1e-4), $"step {step}");
            appended = logits.argmax(-1);
            decoded.Add(appended);
        }
    }

    /// <summary>The last position's logits of one full forward pass per row, with that row's task.</summary>
    private static Tensor Reference(LanguageModel model, Tensor prompts, List<Tensor> decoded, string[] tasks)
    {
        var rows = new List<Tensor>();
        for (var i = 0; i < tasks.Length; i++)
        {
            var generated = decoded.Select(d => d.narrow(0, i, 1).view(1, 1)).ToList();
            var ids = prompts.narrow(0, i, 1);
            var logits = model switch
            {
                CausalLanguageModel causal => causal.Forward(cat([ids, .. generated], 1), adapterNames: [tasks[i]]).Logits,
                Seq2SeqLanguageModel s2s => s2s.Forward(ids, null,
                    cat([full(1, 1, s2s.DecoderStartTokenId, dtype: ScalarType.Int64), .. generated], 1), adapterNames: [tasks[i]]).Logits,
                _ => throw new InvalidOperationException(),
            };
            rows.Add(logits[0, -1]);
        }
        return stack(rows);
    }

    /// <summary>NeMo's promise: training a new task leaves every existing task's rows and outputs bit-identical.</summary>
    [Fact]
    public void TrainingANewTaskLeavesTheOthersBitIdentical()
    {
        using var model = LlamaForCausalLM.FromPretrained(Fixtures.Base("llama"));
        manual_seed(6);
        model.Prompts.Add("old", PTuning);
        model.Prompts.Freeze("old");
        model.Prompts.SetTrainable("old", false);
        using var scope = NewDisposeScope();
        var (ids, mask) = LoraMathTests.Batch();
        model.eval();
        var rowsBefore = model.Prompts.Rows("old").clone();
        Tensor logitsBefore;
        using (no_grad()) logitsBefore = model.Forward(ids, mask, adapterNames: ["old", "old", "old"]).Logits.clone();

        model.Prompts.Add("new", Tuning);
        model.Prompts.SetActive("new");
        var newBefore = model.Prompts.Rows("new").clone();
        var options = new TrainerOptions { MaxSteps = 4, BatchSize = 4, LearningRate = 1e-2, LogEvery = 1 };
        var trained = new Trainer(model, DataTests.LlamaTokenizer(), TrainerTests.Examples(16), null, options, null).Run();
        Assert.Equal(4, trained.Steps);
        Assert.False(Same(model.Prompts.Rows("new"), newBefore));   // the new task did train

        model.eval();
        Assert.True(Same(model.Prompts.Rows("old"), rowsBefore));
        using (no_grad()) Assert.True(Same(model.Forward(ids, mask, adapterNames: ["old", "old", "old"]).Logits, logitsBefore));
    }

    /// <summary>A P-tuning run resumed from its checkpoint (which keeps the encoder, unlike peft's file) gives the losses
    /// of the uninterrupted run.</summary>
    [Fact]
    public void AResumedPTuningRunContinuesExactly()
    {
        var data = TrainerTests.Examples(20);
        var options = new TrainerOptions { MaxSteps = 6, BatchSize = 3, LearningRate = 3e-3, LogEvery = 1, SaveEvery = 3 };
        var config = PTuning with { EncoderType = PromptEncoderType.Lstm, EncoderDropout = 0.3 };
        using var dir = new TempDir();
        LlamaForCausalLM Fresh()
        {
            var model = LlamaForCausalLM.FromPretrained(Fixtures.Base("llama"));
            manual_seed(12);
            model.Prompts.Add("default", config);
            return model;
        }
        using var whole = Fresh();
        var uninterrupted = TrainerTests.Losses(new Trainer(whole, DataTests.LlamaTokenizer(), data, null, options, dir.File("a")));

        using var first = Fresh();
        var before = TrainerTests.Losses(new Trainer(first, DataTests.LlamaTokenizer(), data, null, options with { SaveEvery = 100 }, dir.File("b")), stopAfter: 3);
        using var resumed = Fresh();
        resumed.Prompts.ReadState(Path.Combine(dir.File("b"), TrainingCheckpoint.PromptsFolder, "default"), "default");
        var after = TrainerTests.Losses(new Trainer(resumed, DataTests.LlamaTokenizer(), data, null, options, dir.File("b")), dir.File("b"));
        Assert.Equal(uninterrupted, before.Concat(after).ToList());
    }

    /// <summary>Freezing a P-tuning encoder into its rows keeps the outputs and drops the encoder's parameters.</summary>
    [Fact]
    public void FreezingAnEncoderKeepsItsOutputs()
    {
        using var model = Gpt2LMHeadModel.FromPretrained(Fixtures.Base("gpt2"));
        manual_seed(8);
        model.Prompts.Add("task", PTuning with { EncoderType = PromptEncoderType.NemoMlp });
        using var scope = NewDisposeScope();
        var (ids, mask) = LoraMathTests.Batch();
        model.eval();
        using var noGrad = no_grad();
        var before = model.Forward(ids, mask).Logits.clone();
        Assert.Contains(model.TrainableParameters(), p => p.Name == "prompt_encoder.task.mlp_head.2.weight");
        model.Prompts.Freeze("task");
        Assert.Equal(["prompt_encoder.task.embedding.weight"], model.TrainableParameters().Select(p => p.Name));
        Assert.True(model.Forward(ids, mask).Logits.allclose(before, rtol: 0, atol: 1e-6));
        Assert.All(model.TrainableParameters(), p => Assert.Equal(PeftMethod.PromptLearning, p.Method));
    }

    /// <summary>Saving writes peft's two files; loading them gives the same outputs (the encoder saved as its output).</summary>
    [Theory]
    [InlineData("gpt2", "ptuning")]
    [InlineData("gpt2", "prefix")]
    [InlineData("t5", "prompt")]
    [InlineData("t5", "prefix")]
    public void SavedTasksLoadWithTheSameOutputs(string family, string method)
    {
        using var dir = new TempDir();
        var config = method switch { "prompt" => Tuning with { Init = PromptInit.SampleVocab }, "prefix" => Prefix with { PrefixProjection = true, EncoderHiddenSize = 8 }, _ => PTuning };
        using var model = Load(family);
        manual_seed(10);
        model.Prompts.Add("task", config);
        model.Prompts.Save(dir.File("adapter"), "task");
        var json = File.ReadAllText(dir.File("adapter/adapter_config.json"));
        Assert.Contains($"\"peft_type\": \"{PromptConfigJson.PeftType(config.Method)}\"", json);
        Assert.Contains($"\"num_transformer_submodules\": {(family == "t5" ? 2 : 1)}", json);

        using var loaded = Load(family);
        loaded.Prompts.Load(dir.File("adapter"), "task");
        Assert.Empty(loaded.TrainableParameters());
        using var scope = NewDisposeScope();
        var (ids, mask) = LoraMathTests.Batch();
        model.eval();
        loaded.eval();
        using var noGrad = no_grad();
        Assert.True(Outputs(model, ids, mask).allclose(Outputs(loaded, ids, mask), rtol: 0, atol: 1e-5));
    }

    /// <summary>NeMo's markers: virtual tokens written into slots of the input equal the same tokens put in front
    /// when the slots are at the front; slots inside the text decode through the cache like one pass; a mixed batch
    /// with slots equals each row alone.</summary>
    [Fact]
    public void VirtualTokensInSlotsMatchTheFrontAndTheCache()
    {
        using var model = LlamaForCausalLM.FromPretrained(Fixtures.Base("llama"));
        manual_seed(16);
        model.Prompts.Add("a", PTuning);                          // 5 virtual tokens
        model.Prompts.Add("b", Tuning);                           // 3
        model.eval();
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var text = tensor(new long[,] { { 1, 40, 41, 42, 43 }, { 1, 50, 51, 52, 53 } });
        var front = model.Forward(text, adapterNames: ["a", "a"]).Logits;                          // (2, 5 + 5, V)
        var slotIds = cat([tensor(Enumerable.Range(0, 5).Select(VirtualTokens.SlotId).ToArray()).unsqueeze(0).expand(2, -1), text], 1);
        var slotted = model.Forward(slotIds, adapterNames: ["a", "a"]).Logits;                     // (2, 10, V): no positions added
        Assert.Equal(10, slotted.shape[1]);
        Assert.True(slotted.allclose(front, rtol: 0, atol: 1e-5));

        // Slots inside the text: 2 before "40", 3 after "41" (NeMo's virtual_token_splits [2, 3]).
        long[] row = [1, -1, -2, 40, 41, -3, -4, -5, 42, 43];
        var ids = tensor(row).unsqueeze(0);
        var whole = model.Forward(ids, adapterNames: ["a"]).Logits;
        using var cache = new KvCache();
        var first = model.Logits(ids.narrow(1, 0, 8), cache: cache, routing: RouteFor(model, ids, "a"));
        cache.Advance(8);
        Assert.True(first.allclose(whole.narrow(1, 0, 8), rtol: 0, atol: 1e-5));
        var next = model.Logits(ids.narrow(1, 8, 1), cache: cache, routing: RouteFor(model, ids, "a"));
        Assert.True(next.allclose(whole.narrow(1, 8, 1), rtol: 0, atol: 1e-5));

        // A mixed batch: task b's three slots in row 1, task a's five in row 0, each equal to its row alone.
        var mixedIds = tensor(new long[,] { { 1, -1, -2, 40, -3, -4, -5, 41 }, { 1, 50, -1, -2, -3, 51, 52, 53 } });
        var mixed = model.Forward(mixedIds, adapterNames: ["a", "b"]).Logits;
        Assert.True(mixed.narrow(0, 0, 1).allclose(model.Forward(mixedIds.narrow(0, 0, 1), adapterNames: ["a"]).Logits, rtol: 0, atol: 1e-5));
        Assert.True(mixed.narrow(0, 1, 1).allclose(model.Forward(mixedIds.narrow(0, 1, 1), adapterNames: ["b"]).Logits, rtol: 0, atol: 1e-5));

        var e = Assert.Throws<PeftDslException>(() => model.Forward(mixedIds, adapterNames: ["b", "b"]));
        Assert.Contains("row 0: task 'b' has 3 virtual tokens, so its slots are ids -1 … -3, each once; the row has slots -1, -2, -3, -4, -5", e.Message);
        e = Assert.Throws<PeftDslException>(() => model.Forward(cat([mixedIds, tensor(new long[] { 1, 2, 3, 4, 5, 6, 7, 8 }).unsqueeze(0)]), adapterNames: ["a", "b", "b"]));
        Assert.Contains("row 2 runs task 'b' without virtual-prompt slots while other rows have them", e.Message);
        model.Prompts.SetActive(null);
        e = Assert.Throws<PeftDslException>(() => model.Forward(mixedIds));
        Assert.Contains("has virtual-prompt slots (negative ids) but no prompt task is routed to it", e.Message);
    }

    /// <summary>The routing a call with one task per row builds (what Forward builds from adapterNames).</summary>
    private static AdapterRouting RouteFor(LanguageModel model, Tensor ids, string task) =>
        model.Route(Enumerable.Repeat(task, (int)ids.shape[0]).ToList(), ids);

    /// <summary>On T5 the slots are in the encoder input: the decoder logits equal the prompt put in front.</summary>
    [Fact]
    public void SlotsOnT5MatchTheFront()
    {
        using var model = T5ForConditionalGeneration.FromPretrained(Fixtures.Base("t5"));
        manual_seed(18);
        model.Prompts.Add("a", Tuning);
        model.eval();
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var text = tensor(new long[,] { { 40, 41, 42, 1 } });
        var decoder = tensor(new long[,] { { 0, 7, 8 } });
        var front = model.Forward(text, null, decoder).Logits;
        var slotted = model.Forward(cat([tensor(new long[] { -1, -2, -3 }).unsqueeze(0), text], 1), null, decoder).Logits;
        Assert.True(slotted.allclose(front, rtol: 0, atol: 1e-5));
    }

    /// <summary>peft's TEXT init: the init text's token embeddings, repeated to cover the virtual tokens; vocabulary
    /// init: rows of the token embedding.</summary>
    [Fact]
    public void TextAndVocabularyInitCopyTokenEmbeddings()
    {
        using var model = LlamaForCausalLM.FromPretrained(Fixtures.Base("llama"));
        model.Prompts.Add("text", Tuning with { NumVirtualTokens = 5, Init = PromptInit.Text, InitText = "two tokens" }, [7, 11]);
        using var scope = NewDisposeScope();
        var expected = model.model.embed_tokens.weight.index_select(0, tensor(new long[] { 7, 11, 7, 11, 7 }));
        Assert.True(Same(model.Prompts.Rows("text"), expected.detach()));

        manual_seed(3);
        model.Prompts.Add("vocab", Tuning with { Init = PromptInit.SampleVocab });
        var rows = model.Prompts.Rows("vocab");
        var table = model.model.embed_tokens.weight.detach();
        for (var i = 0; i < rows.shape[0]; i++)
            Assert.True((table == rows[i]).all(1).any().item<bool>(), $"row {i} is not a vocabulary row");
        var e = Assert.Throws<PeftDslException>(() => model.Prompts.Add("empty", Tuning with { Init = PromptInit.Text, InitText = "x" }, []));
        Assert.Contains("tokenized to nothing", e.Message);
    }

    [Fact]
    public void MismatchesAreRefusedWithTheFileAndTheReason()
    {
        using var dir = new TempDir();
        using (var gpt2 = Gpt2LMHeadModel.FromPretrained(Fixtures.Base("gpt2")))
        {
            gpt2.Prompts.Add("task", Prefix);
            gpt2.Prompts.Save(dir.File("prefix"), "task");
            gpt2.Prompts.Add("p", Tuning);
            gpt2.Prompts.Save(dir.File("prompt"), "p");
            var clash = Assert.Throws<PeftDslException>(() => gpt2.Adapters.Add("p", LoraMathTests.Random("c_attn")));
            Assert.Contains("'p' already names a prompt task", clash.Message);
        }
        using var t5 = T5ForConditionalGeneration.FromPretrained(Fixtures.Base("t5"));
        var e = Assert.Throws<PeftDslException>(() => t5.Prompts.Load(dir.File("prompt")));
        Assert.Contains("task_type is CAUSAL_LM, but the model is an encoder-decoder", e.Message);
        e = Assert.Throws<PeftDslException>(() => t5.Prompts.Load(dir.File("prefix")));
        Assert.Contains("task_type is CAUSAL_LM, but the model is an encoder-decoder", e.Message);

        using var llama = LlamaForCausalLM.FromPretrained(Fixtures.Base("llama"));
        e = Assert.Throws<PeftDslException>(() => llama.Prompts.Load(dir.File("prefix")));
        Assert.Contains("adapter_config.json: the prefix is for", e.Message);

        var config = dir.File("prompt/adapter_config.json");
        File.WriteAllText(config, File.ReadAllText(config).Replace("\"num_virtual_tokens\": 3", "\"num_virtual_tokens\": 4"));
        using var gpt2b = Gpt2LMHeadModel.FromPretrained(Fixtures.Base("gpt2"));
        e = Assert.Throws<PeftDslException>(() => gpt2b.Prompts.Load(dir.File("prompt")));
        Assert.Contains("'prompt_embeddings' is [3, 32], the config means 4 rows", e.Message);
        Assert.Empty(gpt2b.Prompts.Names);
    }

    private static LanguageModel Load(string family) => family == "t5"
        ? T5ForConditionalGeneration.FromPretrained(Fixtures.Base("t5"))
        : Gpt2LMHeadModel.FromPretrained(Fixtures.Base("gpt2"));

    private static Tensor Outputs(LanguageModel model, Tensor ids, Tensor mask) => model switch
    {
        CausalLanguageModel causal => causal.Forward(ids, mask).Logits,
        Seq2SeqLanguageModel seq2seq => seq2seq.Forward(ids, mask, ids.narrow(1, 0, 3)).Logits,
        _ => throw new InvalidOperationException(),
    };

    /// <summary>Bit-identical: same shape and every element equal.</summary>
    private static bool Same(Tensor a, Tensor b) => a.shape.SequenceEqual(b.shape) && a.eq(b).all().item<bool>();

    private static Dictionary<string, Tensor> Grads(nn.Module model) =>
        model.TrainableParameters().Where(p => p.Parameter.grad is not null)
            .ToDictionary(p => p.Name, p => p.Parameter.grad!.clone());
}
