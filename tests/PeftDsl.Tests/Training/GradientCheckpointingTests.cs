using System.Text.Json;
using PeftDsl.Errors;
using PeftDsl.Models.Llama;
using PeftDsl.Models.T5;
using PeftDsl.Peft;
using PeftDsl.Peft.Adapters;
using PeftDsl.Peft.Ia3;
using PeftDsl.Peft.Lora;
using PeftDsl.Peft.Prompts;
using PeftDsl.Runtime;
using Xunit;
using static TorchSharp.torch;

namespace PeftDsl.Tests.Training;

/// <summary>
/// Activation checkpointing recomputes each block in backward from its input and its random state: the loss, every
/// trainable gradient and the generator's position afterwards equal the plain run's, with dropout on, for each PEFT
/// method that can run checkpointed, for mixed-adapter batches and for an encoder-decoder.
/// </summary>
[Collection(GlobalRandomness.Name)]
public sealed class GradientCheckpointingTests
{
    private static readonly long[][] Rows = [[3, 9, 27, 1, 50, 12, 33, 8], [41, 5, 7, 19, 2, 60, 11, 4]];

    /// <summary>The loss, the trainable gradients by name, and the next draw of the generator, after one
    /// forward and backward from seed 5.</summary>
    private static (float Loss, Dictionary<string, Tensor> Grads, float NextDraw) Step(LanguageModel model, bool checkpoint,
        Func<LanguageModel, Tensor> loss)
    {
        model.GradientCheckpointing = checkpoint;
        model.train();
        foreach (var p in model.parameters()) p.grad = null;
        manual_seed(5);
        var value = loss(model);
        Autograd.Backward(value);
        var grads = model.TrainableParameters().ToDictionary(p => p.Name, p => p.Parameter.grad!.detach().clone());
        return (value.item<float>(), grads, rand(1).item<float>());
    }

    /// <param name="everyTensorMoves">False for a fresh bottleneck adapter: its output layer is zero, so only that
    /// layer has a gradient at the first step.</param>
    private static void AssertSame(LanguageModel model, Func<LanguageModel, Tensor> loss, bool everyTensorMoves = true)
    {
        var plain = Step(model, false, loss);
        var checkpointed = Step(model, true, loss);
        Assert.Equal(plain.Loss, checkpointed.Loss, 6);
        Assert.Equal(plain.Grads.Keys.Order(), checkpointed.Grads.Keys.Order());
        static bool Moves(Tensor g) => g.abs().sum().item<float>() > 0;
        if (everyTensorMoves) Assert.All(plain.Grads, p => Assert.True(Moves(p.Value), $"{p.Key}: no gradient in the plain run"));
        else Assert.Contains(plain.Grads.Values, Moves);
        foreach (var (name, g) in plain.Grads)
        {
            var difference = (g - checkpointed.Grads[name]).abs().max().item<float>();
            Assert.True(difference <= 1e-6f * Math.Max(1f, g.abs().max().item<float>()), $"{name}: gradients differ by {difference}");
        }
        // The recompute's draws are undone: the stream goes on as in the plain run.
        Assert.Equal(plain.NextDraw, checkpointed.NextDraw);
    }

    private static Tensor CausalLoss(LanguageModel model, IReadOnlyList<string>? adapterNames = null)
    {
        var ids = tensor(Rows.SelectMany(r => r).ToArray()).view(2, -1);
        return ((CausalLanguageModel)model).Forward(ids, labels: ids, adapterNames: adapterNames).Loss!;
    }

    private static LlamaForCausalLM Llama()
    {
        var model = LlamaForCausalLM.FromPretrained(Fixtures.Base("llama"));
        model.BaseDropout = 0.2;   // attention and residual dropout draw masks in every block
        return model;
    }

    [Fact]
    public void LoraWithDropoutGetsThePlainGradients()
    {
        using var model = Llama();
        model.Adapters.Add("a", new LoraConfig { R = 4, Dropout = 0.3, TargetModules = ["q_proj", "v_proj", "down_proj"], InitLoraWeights = LoraInit.Off });
        AssertSame(model, m => CausalLoss(m));
    }

    [Fact]
    public void AMixedAdapterBatchGetsThePlainGradients()
    {
        using var model = Llama();
        model.Adapters.Add("a", new LoraConfig { R = 4, Dropout = 0.1, InitLoraWeights = LoraInit.Off });
        model.Adapters.Add("b", new LoraConfig { R = 2, Dropout = 0.1, InitLoraWeights = LoraInit.Off });
        AssertSame(model, m => CausalLoss(m, ["b", "a"]));
    }

    [Theory]
    [InlineData("ia3")]
    [InlineData("adapter")]
    [InlineData("prompt")]
    [InlineData("ptuning")]
    public void OtherMethodsGetThePlainGradients(string method)
    {
        using var model = Llama();
        switch (method)
        {
            case "ia3": model.Ia3.Add("a", new Ia3Config()); break;
            case "adapter": model.Bottleneck.Add("a", new BottleneckConfig { AdapterDim = 4, Dropout = 0.2 }); break;
            default:
                model.Prompts.Add("a", new PromptConfig { Method = method == "prompt" ? PromptMethod.PromptTuning : PromptMethod.PTuning, NumVirtualTokens = 3 });
                model.Prompts.SetActive("a");
                break;
        }
        AssertSame(model, m => CausalLoss(m), everyTensorMoves: method != "adapter");
    }

    [Fact]
    public void AnEncoderDecoderGetsThePlainGradients()
    {
        // LoRA in the encoder makes the decoder's cross-attention input need a gradient; T5's first layers compute the
        // position bias the later ones reuse.
        using var model = T5ForConditionalGeneration.FromPretrained(Fixtures.Base("t5"));
        model.BaseDropout = 0.2;
        model.Adapters.Add("a", new LoraConfig { R = 4, Dropout = 0.1, TargetModules = ["q", "v", "wo"], InitLoraWeights = LoraInit.Off });
        var input = tensor(Rows.SelectMany(r => r).ToArray()).view(2, -1);
        var decoder = tensor(new long[] { 0, 5, 9, 2, 0, 7, 3, 8 }).view(2, -1);
        AssertSame(model, m => ((Seq2SeqLanguageModel)m).Forward(input, null, decoder, labels: decoder).Loss!);
    }

    [Fact]
    public void EvaluationRunsPlainly()
    {
        using var model = Llama();
        model.Adapters.Add("a", new LoraConfig { R = 4, InitLoraWeights = LoraInit.Off });
        model.GradientCheckpointing = true;
        model.eval();
        var ids = tensor(Rows[0]).unsqueeze(0);
        using var checkpointed = ((CausalLanguageModel)model).Forward(ids).Logits;
        model.GradientCheckpointing = false;
        using var plain = ((CausalLanguageModel)model).Forward(ids).Logits;
        Assert.True(checkpointed.allclose(plain, 0, 0));
    }

    [Fact]
    public void PrefixTuningIsRefusedInOneLine()
    {
        using var model = Llama();
        model.Prompts.Add("a", new PromptConfig { Method = PromptMethod.PrefixTuning, NumVirtualTokens = 3 });
        model.Prompts.SetActive("a");
        model.GradientCheckpointing = true;
        model.train();
        var e = Assert.Throws<PeftDslException>(() => CausalLoss(model));
        Assert.Contains("prefix tuning", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    /// <summary>A block whose second run (the recompute) fails, as an out-of-memory would.</summary>
    private sealed class FailingBlock : nn.Module<Tensor, ForwardContext, Tensor>
    {
        private readonly TorchSharp.Modules.Linear linear = nn.Linear(4, 4);
        public int Runs;

        public FailingBlock() : base(nameof(FailingBlock)) => RegisterComponents();

        public override Tensor forward(Tensor x, ForwardContext ctx) =>
            ++Runs == 2 ? throw new InvalidOperationException("out of memory in the recompute") : linear.forward(x);
    }

    [Fact]
    public void ARecomputeThatFailsThrowsWhenBackwardReturns()
    {
        // The autograd engine cannot pass an exception on; the process must not abort, and the error must not be lost.
        using var block = new FailingBlock();
        block.train();
        var x = randn(1, 3, 4);
        using var ctx = ForwardContext.Create(x, new StackInputs(Checkpoint: true), null);
        var y = ctx.RunBlock(block, x);
        var e = Assert.Throws<InvalidOperationException>(() => Autograd.Backward(y.sum()));
        Assert.Equal("out of memory in the recompute", e.Message);
        Assert.Equal(2, block.Runs);
        Autograd.ThrowIfBackwardFailed();   // reported once
    }

    [Fact]
    public void TrainingWithCheckpointingLogsTheSameLossesAndRefusesPrefixTuning()
    {
        using var dir = TrainCliTests.Workspace();
        string[] Run(string output, params string[] extra) =>
        [
            "train", "--model", Fixtures.Base("llama"), "--tokenizer", dir.File("tok"), "--data", dir.File("train.jsonl"), "--out", dir.File(output),
            "--batch", "4", "--lr", "5e-3", "--log-every", "1", "--steps", "3", "--base-dropout", "0.1", .. extra,
        ];
        double[] Losses(string output) => File.ReadAllLines(dir.File(output + "/metrics.jsonl"))
            .Select(l => JsonDocument.Parse(l).RootElement).Where(e => e.TryGetProperty("loss", out _)).Select(e => e.GetProperty("loss").GetDouble()).ToArray();
        var (code, _, stderr) = ParityTests.Peft(Run("plain", "--lora-dropout", "0.1"));
        Assert.True(code == 0, stderr);
        (code, _, stderr) = ParityTests.Peft(Run("checkpointed", "--gradient-checkpointing", "--lora-dropout", "0.1"));
        Assert.True(code == 0, stderr);
        var (plain, checkpointed) = (Losses("plain"), Losses("checkpointed"));
        Assert.Equal(3, checkpointed.Length);
        // Later steps depend on earlier gradients, dropout masks included: equal losses mean equal updates.
        for (var i = 0; i < 3; i++) Assert.Equal(plain[i], checkpointed[i], 5);

        (code, _, stderr) = ParityTests.Peft(Run("prefix", "--gradient-checkpointing", "--method", "prefix"));
        Assert.Equal(2, code);
        Assert.Contains("--gradient-checkpointing cannot be combined with --method prefix", stderr);
        Assert.Single(stderr.Trim().Split('\n'));
        Assert.False(Directory.Exists(dir.File("prefix")));
    }
}
