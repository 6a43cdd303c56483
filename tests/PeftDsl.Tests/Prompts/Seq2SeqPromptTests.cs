using System.Text.Json.Nodes;
using PeftDsl.Errors;
using PeftDsl.Models.T5;
using PeftDsl.Peft.Prompts;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace PeftDsl.Tests.Prompts;

/// <summary>
/// Prompt tuning and P-tuning on an encoder-decoder, as peft 0.21 computes them (docs/prompt-learning.md): a table of
/// 2P rows when the config says <c>num_transformer_submodules</c> 2, of which the encoder reads the first P and the
/// decoder none (peft's <c>PeftModelForSeq2SeqLM.forward</c> prepends <c>prompts[:, :P]</c> for these two methods and
/// passes the labels and decoder inputs through unchanged); a table of P rows, all read by the encoder, when it says 1
/// (NeMo's encoder-only prompt).
/// </summary>
[Collection(GlobalRandomness.Name)]
public sealed class Seq2SeqPromptTests
{
    private static Tensor Ids => tensor(new long[,] { { 5, 17, 300, 42, 7 }, { 9, 2, 3, 4, 1 } });
    private static Tensor Decoder => tensor(new long[,] { { 0, 4, 9 }, { 0, 8, 2 } });
    private static Tensor Labels => tensor(new long[,] { { 4, 9, 1 }, { 8, 2, 1 } });

    /// <summary>With 2 submodules the second half of a prompt-tuning table takes part in nothing: the loss and logits
    /// are those of the first P rows in front of the encoder input, and the second half's gradient is exactly 0. With 1,
    /// the table has P rows and every row gets a gradient.</summary>
    [Theory]
    [InlineData(2)]
    [InlineData(1)]
    public void PromptTuningReadsTheFirstPRowsInTheEncoder(int submodules)
    {
        using var model = T5ForConditionalGeneration.FromPretrained(Fixtures.Base("t5"));
        manual_seed(3);
        var config = model.Prompts.Add("task", new PromptConfig { Method = PromptMethod.PromptTuning, NumVirtualTokens = 3, NumTransformerSubmodules = submodules });
        Assert.Equal(submodules, config.NumTransformerSubmodules);
        var table = ((PromptEmbeddingTask)model.Prompts.Task("task")).embedding.weight;
        Assert.Equal(3 * submodules, table.shape[0]);
        using var scope = NewDisposeScope();
        model.train();
        var output = model.Forward(Ids, null, Decoder, Labels);
        output.Loss!.backward();
        var grad = table.grad!;
        Assert.True(grad.narrow(0, 0, 3).abs().sum().item<float>() > 0, "the encoder's rows must be trained");
        if (submodules == 2) Assert.Equal(0, grad.narrow(0, 3, 3).abs().max().item<float>());

        // The logits are the plain model's with the first P rows in front of the encoder input: with those rows set to
        // the embeddings of tokens 11, 12 and 13, they equal the plain model on those tokens followed by the input.
        using var noGrad = no_grad();
        table.narrow(0, 0, 3).copy_(model.shared.weight.index_select(0, tensor(new long[] { 11, 12, 13 })));
        var prompted = model.Forward(Ids, null, Decoder).Logits;
        using var plain = T5ForConditionalGeneration.FromPretrained(Fixtures.Base("t5"));
        var expected = plain.Forward(cat([tensor(new long[,] { { 11, 12, 13 }, { 11, 12, 13 } }), Ids], 1), null, Decoder).Logits;
        Assert.True(prompted.allclose(expected, rtol: 0, atol: 1e-5), $"max difference {(prompted - expected).abs().max().item<float>()}");
    }

    /// <summary>P-tuning's LSTM runs over the whole table, so with 2 submodules the second half's input rows do get
    /// gradients, through the bidirectional LSTM, though the decoder never reads them: what peft computes
    /// (t5.ptuning_lstm's reference gradients cover the whole input table). With 1 the LSTM runs over P rows only.</summary>
    [Fact]
    public void PTuningRunsItsEncoderOverTheWholeTable()
    {
        using var model = T5ForConditionalGeneration.FromPretrained(Fixtures.Base("t5"));
        manual_seed(4);
        model.Prompts.Add("two", new PromptConfig { Method = PromptMethod.PTuning, NumVirtualTokens = 3, EncoderType = PromptEncoderType.Lstm, EncoderHiddenSize = 16 });
        model.Prompts.Add("one", new PromptConfig { Method = PromptMethod.PTuning, NumVirtualTokens = 3, EncoderType = PromptEncoderType.Lstm, EncoderHiddenSize = 16, NumTransformerSubmodules = 1 });
        using var scope = NewDisposeScope();
        model.train();
        model.Forward(Ids, null, Decoder, Labels, adapterNames: ["two", "one"]).Loss!.backward();
        var two = ((PTuningEncoder)model.Prompts.Task("two")).embedding.weight;
        var one = ((PTuningEncoder)model.Prompts.Task("one")).embedding.weight;
        Assert.Equal(6, two.shape[0]);
        Assert.Equal(3, one.shape[0]);
        Assert.True(two.grad!.narrow(0, 3, 3).abs().sum().item<float>() > 0);
        Assert.True(one.grad!.abs().sum().item<float>() > 0);
    }

    /// <summary>A file that says 1 loads as a P-row table and computes what was saved; one that says 3 is refused.</summary>
    [Fact]
    public void FilesSayHowManySubmodules()
    {
        using var dir = new TempDir();
        using var model = T5ForConditionalGeneration.FromPretrained(Fixtures.Base("t5"));
        manual_seed(5);
        model.Prompts.Add("one", new PromptConfig { Method = PromptMethod.PromptTuning, NumVirtualTokens = 4, NumTransformerSubmodules = 1 });
        model.Prompts.Save(dir.File("one"), "one");
        var json = JsonNode.Parse(File.ReadAllText(dir.File("one/adapter_config.json")))!;
        Assert.Equal(1, (int)json["num_transformer_submodules"]!);

        using var loaded = T5ForConditionalGeneration.FromPretrained(Fixtures.Base("t5"));
        loaded.Prompts.Load(dir.File("one"), "one");
        Assert.Equal(4, loaded.Prompts.Rows("one").shape[0]);
        using (no_grad())
            Assert.True(loaded.Forward(Ids, null, Decoder).Logits.allclose(model.Forward(Ids, null, Decoder).Logits, rtol: 0, atol: 1e-6));

        json["num_transformer_submodules"] = 3;
        File.WriteAllText(dir.File("one/adapter_config.json"), json.ToJsonString());
        using var refused = T5ForConditionalGeneration.FromPretrained(Fixtures.Base("t5"));
        var e = Assert.Throws<PeftDslException>(() => refused.Prompts.Load(dir.File("one"), "x"));
        Assert.Contains("adapter_config.json: num_transformer_submodules must be 1 (decoder-only, or an encoder-decoder's encoder rows only) or 2", e.Message);
    }
}
