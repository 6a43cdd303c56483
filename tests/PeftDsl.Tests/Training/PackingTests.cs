using System.Text.Json;
using PeftDsl.Config;
using PeftDsl.Data;
using PeftDsl.Models.Gemma2;
using PeftDsl.Models.Gpt2;
using PeftDsl.Models.Llama;
using PeftDsl.Peft;
using PeftDsl.Peft.Lora;
using PeftDsl.Runtime;
using Xunit;
using static TorchSharp.torch;

namespace PeftDsl.Tests.Training;

/// <summary><c>--packing</c>: several examples share a row, each with its own positions and attention, and the loss
/// and gradients are those of the same examples unpacked.</summary>
public sealed class PackingTests
{
    private static TokenizedExample Example(int promptLength, int answerLength, int seed)
    {
        var random = new Random(seed);
        long Id() => random.Next(3, 60);
        return new TokenizedExample("t", Enumerable.Range(0, promptLength).Select(_ => Id()).ToArray(),
            Enumerable.Range(0, answerLength).Select(_ => Id()).ToArray(), "test");
    }

    private static readonly TokenizedExample[] Examples = [Example(3, 2, 1), Example(1, 1, 2), Example(2, 1, 3), Example(1, 1, 4), Example(2, 2, 5)];

    [Fact]
    public void ExamplesArePackedFirstFitByDecreasingLengthWithPositionsAndSegments()
    {
        // Lengths 5, 2, 3, 2, 4 into rows of 5: [5], [4], [3, 2], [2].
        using var batch = Batch.CausalPacked(Examples, answerOnly: true, CPU);
        Assert.Equal([4L, 5], batch.InputIds.shape);
        Assert.Equal(new long[] { 1, 1, 1, 2, 2 }, batch.Packed!.Segments[2].data<long>().ToArray());
        Assert.Equal(new long[] { 0, 1, 2, 0, 1 }, batch.Packed.Positions[2].data<long>().ToArray());
        Assert.Equal(new long[] { 1, 1, 0, 0, 0 }, batch.AttentionMask[3].data<long>().ToArray());
        // Row 2 holds the 3-token example (2 + 1) then a 2-token one (1 + 1): answers only, never an example's first token.
        var e3 = Examples[2];
        var e2 = Examples[1];
        Assert.Equal(new[] { -100, -100, e3.Answer[0], -100, e2.Answer[0] }, batch.Labels[2].data<long>().ToArray());
        using var plain = Batch.Causal(Examples, answerOnly: true, CPU);
        Assert.Equal(plain.LossTokens, batch.LossTokens);
        Assert.Equal(Examples.Sum(e => e.Length), batch.AttentionMask.sum().item<long>());
    }

    public static TheoryData<string> Models => ["llama", "gpt2", "gemma2"];

    /// <summary>The loss and the LoRA gradients of a packed batch are those of the same examples, one to a row: on Llama
    /// (rotary), GPT-2 (learned positions) and Gemma 2 (sliding window and soft-capping).</summary>
    [Theory]
    [MemberData(nameof(Models))]
    public void PackedLossAndGradientsAreTheUnpackedOnes(string family)
    {
        manual_seed(9);
        using CausalLanguageModel model = family switch
        {
            "llama" => LlamaForCausalLM.FromPretrained(Fixtures.Base("llama")),
            "gpt2" => Gpt2LMHeadModel.FromPretrained(Fixtures.Base("gpt2")),
            _ => new Gemma2ForCausalLM(Gemma2Config.FromJson(ConfigJson.Parse("""
                {"vocab_size": 64, "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2, "num_attention_heads": 4,
                 "num_key_value_heads": 2, "head_dim": 8, "sliding_window": 2, "attn_logit_softcapping": 1.0}
                """, "config.json"))),
        };
        model.Adapters.Add("a", new LoraConfig { R = 4, TargetModules = ["all"], InitLoraWeights = LoraInit.Off });
        model.Adapters.SetActive("a");
        model.train();
        var results = new List<(float Loss, Tensor[] Grads)>();
        foreach (var packed in new[] { false, true })
        {
            model.zero_grad();
            using var batch = packed ? Batch.CausalPacked(Examples, true, CPU) : Batch.Causal(Examples, true, CPU);
            var loss = model.Forward(batch.InputIds, batch.AttentionMask, batch.Labels, packed: batch.Packed).Loss!;
            loss.backward();
            results.Add((loss.item<float>(), model.TrainableParameters().Select(p => p.Parameter.grad!.clone()).ToArray()));
        }
        Assert.Equal(results[0].Loss, results[1].Loss, 5);
        for (var i = 0; i < results[0].Grads.Length; i++)
            Assert.True(results[0].Grads[i].allclose(results[1].Grads[i], rtol: 1e-4, atol: 1e-6), $"gradient {i} differs");
        // Without the packed mask and positions the same rows give another loss: the test sees both.
        using var rows = Batch.CausalPacked(Examples, true, CPU);
        using (no_grad())
            Assert.NotEqual(results[0].Loss, model.Forward(rows.InputIds, rows.AttentionMask, rows.Labels).Loss!.item<float>(), 3);
    }

    [Fact]
    public void TrainingWithPackingLogsTheSameLossesAndRefusesWhatCannotPack()
    {
        using var dir = TrainCliTests.Workspace();
        string[] Run(string output, string family, params string[] extra) =>
        [
            "train", "--model", Fixtures.Base(family), "--tokenizer", dir.File("tok"), "--data", dir.File("train.jsonl"), "--out", dir.File(output),
            "--batch", "8", "--lr", "5e-3", "--log-every", "1", "--steps", "3", .. extra,
        ];
        double[] Losses(string output) => File.ReadAllLines(dir.File(output + "/metrics.jsonl"))
            .Select(l => JsonDocument.Parse(l).RootElement).Where(e => e.TryGetProperty("loss", out _)).Select(e => e.GetProperty("loss").GetDouble()).ToArray();
        var (code, _, stderr) = ParityTests.Peft(Run("plain", "llama"));
        Assert.True(code == 0, stderr);
        (code, _, stderr) = ParityTests.Peft(Run("packed", "llama", "--packing"));
        Assert.True(code == 0, stderr);
        var (plain, packed) = (Losses("plain"), Losses("packed"));
        // Every step line also carries the process's resident high-water mark (Linux).
        if (OperatingSystem.IsLinux())
            Assert.All(File.ReadAllLines(dir.File("packed/metrics.jsonl")).Select(l => JsonDocument.Parse(l).RootElement).Where(e => e.TryGetProperty("loss", out _)),
                e => Assert.True(e.GetProperty("peak_rss_bytes").GetInt64() > 50L << 20));
        Assert.Equal(3, packed.Length);
        for (var i = 0; i < 3; i++) Assert.Equal(plain[i], packed[i], 3);

        (code, _, stderr) = ParityTests.Peft(Run("prompt", "llama", "--packing", "--method", "prompt"));
        Assert.Equal(2, code);
        Assert.Contains("--packing cannot be combined with prompt learning", stderr);
        Assert.False(Directory.Exists(dir.File("prompt")));
        (code, _, stderr) = ParityTests.Peft(Run("t5", "t5", "--packing"));
        Assert.Equal(2, code);
        Assert.Contains("--packing is for decoder-only models", stderr);
    }
}
