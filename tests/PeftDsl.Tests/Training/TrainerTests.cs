using PeftDsl.Data;
using PeftDsl.Errors;
using PeftDsl.Models.Llama;
using PeftDsl.Peft;
using PeftDsl.Peft.Lora;
using PeftDsl.Tests.Lora;
using PeftDsl.Training;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace PeftDsl.Tests.Training;

/// <summary>The trainer against references: a per-tensor optimizer, an uninterrupted run, one big batch.</summary>
[Collection(GlobalRandomness.Name)]
public sealed class TrainerTests
{
    /// <summary>Random prompts and answers in the tiny Llama's vocabulary.</summary>
    internal static List<TokenizedExample> Examples(int count, int seed = 0)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, count).Select(i => new TokenizedExample("t",
            [1, .. Enumerable.Range(0, random.Next(2, 8)).Select(_ => (long)random.Next(3, 400))],
            [.. Enumerable.Range(0, random.Next(1, 4)).Select(_ => (long)random.Next(3, 400)), 2], $"x:{i}")).ToList();
    }

    internal static LlamaForCausalLM Model(double dropout = 0)
    {
        var model = LlamaForCausalLM.FromPretrained(Fixtures.Base("llama"));
        manual_seed(5);
        model.Adapters.Add("default", new LoraConfig { R = 4, Alpha = 8, TargetModules = ["all"], Dropout = dropout });
        return model;
    }

    internal static List<double> Losses(Trainer trainer, string? resume = null, int? stopAfter = null)
    {
        var losses = new List<double>();
        using var stop = new CancellationTokenSource();
        trainer.Progress += e =>
        {
            if (e is not StepEvent s) return;
            losses.Add(s.Loss);
            if (s.Step == stopAfter) stop.Cancel();
        };
        var result = trainer.Run(resume, stop.Token);
        Assert.Equal(stopAfter is null ? "finished" : "stopped", result.StopReason);
        return losses;
    }

    /// <summary>AdamW on one flat buffer computes what TorchSharp's AdamW computes over the separate tensors.</summary>
    [Fact]
    public void FlatAdamWMatchesThePerTensorOptimizer()
    {
        var data = Examples(24);
        var options = new TrainerOptions { MaxSteps = 6, BatchSize = 4, LearningRate = 5e-3, WarmupSteps = 2, ClipNorm = 0, LogEvery = 1, WeightDecay = 0.1 };
        using var flatModel = Model();
        var flat = Losses(new Trainer(flatModel, DataTests.LlamaTokenizer(), data, null, options, null));

        using var model = Model();
        var parameters = model.TrainableParameters().Select(p => p.Parameter).ToList();
        using var adamw = optim.AdamW(parameters, lr: options.LearningRate, weight_decay: options.WeightDecay);
        var schedule = new LearningRateSchedule(options.LearningRate, options.WarmupSteps, 6, options.Decay);
        var order = BatchOrder.Epoch(data.Select(e => e.Length).ToList(), 4, options.Seed, 0);
        var reference = new List<double>();
        model.train();
        for (var step = 0; step < 6; step++)
        {
            using var scope = NewDisposeScope();
            adamw.zero_grad();
            using var batch = Batch.Causal(order[step].Select(i => data[i]).ToList(), answerOnly: true, CPU);
            var loss = Trainer.Loss(model, batch);
            loss.backward();
            foreach (var group in adamw.ParamGroups) group.LearningRate = schedule.At(step);
            adamw.step();
            reference.Add(loss.item<float>());
        }
        Assert.Equal(6, flat.Count);
        for (var i = 0; i < 6; i++) Assert.Equal(reference[i], flat[i], 5);
        Assert.True(flat[^1] < flat[0], "the loss should fall");
    }

    /// <summary>Stopped after 3 of 6 steps and resumed from its checkpoint, a run (with dropout) gives exactly the
    /// losses of the run that was never stopped.</summary>
    [Fact]
    public void ResumeContinuesExactly()
    {
        var data = Examples(20);
        var options = new TrainerOptions { MaxSteps = 6, BatchSize = 3, Accumulation = 2, LearningRate = 3e-3, LogEvery = 1, SaveEvery = 3 };
        using var dir = new TempDir();
        using var whole = Model(dropout: 0.2);
        var uninterrupted = Losses(new Trainer(whole, DataTests.LlamaTokenizer(), data, null, options, dir.File("a")));

        using var first = Model(dropout: 0.2);
        var before = Losses(new Trainer(first, DataTests.LlamaTokenizer(), data, null, options with { SaveEvery = 100 }, dir.File("b")), stopAfter: 3);
        Assert.Equal(3, TrainingCheckpoint.ReadState(dir.File("b")).Step);   // saved because the run was stopped

        using var resumed = LlamaForCausalLM.FromPretrained(Fixtures.Base("llama"));
        resumed.Adapters.Load(Path.Combine(dir.File("b"), TrainingCheckpoint.AdapterFolder), trainable: true);
        var after = Losses(new Trainer(resumed, DataTests.LlamaTokenizer(), data, null, options, dir.File("b")), dir.File("b"));
        Assert.Equal(uninterrupted, before.Concat(after).ToList());

        var changed = options with { BatchSize = 4 };
        var e = Assert.Throws<PeftDslException>(() => new Trainer(resumed, DataTests.LlamaTokenizer(), data, null, changed, null).Run(dir.File("b")));
        Assert.Contains("made with --batch 3, this run has 4", e.Message);
        changed = options with { LearningRate = 1e-3, Decay = DecayKind.Linear, RunSettings = new Dictionary<string, string> { ["--r"] = "4" } };
        e = Assert.Throws<PeftDslException>(() => new Trainer(resumed, DataTests.LlamaTokenizer(), data, null, changed, null).Run(dir.File("b")));
        Assert.EndsWith("this run's settings differ from the checkpoint's: --lr 0.003 → 0.001, --r (unset) → 4, --schedule cosine → linear; resume with the same settings", e.Message);
    }

    /// <summary>k micro-batches weighted by their answer tokens give the gradient of one batch of all their examples.</summary>
    [Fact]
    public void AccumulatedMicroBatchesEqualOneBigBatch()
    {
        var data = Examples(6, seed: 2);
        using var model = Model();
        var trainer = new Trainer(model, DataTests.LlamaTokenizer(), data, null, new TrainerOptions(), null);
        using var flat = FlatParameters.Of(model);
        model.train();
        trainer.Backward([data], CPU);
        var big = flat.Grads.clone();
        flat.ZeroGrad();
        trainer.Backward([data.Take(2).ToList(), data.Skip(2).Take(3).ToList(), data.Skip(5).ToList()], CPU);
        LoraMathTests.AssertClose(flat.Grads, big, 1e-6, "accumulated gradients", relative: true);
        Assert.True(big.abs().sum().item<float>() > 0);
    }

    /// <summary>A non-finite loss stops the run before the update and names the step; the checkpoint stays.</summary>
    [Fact]
    public void ANonFiniteLossStopsTheRunAndKeepsTheCheckpoint()
    {
        var data = Examples(8);
        using var dir = new TempDir();
        using var model = Model();
        var options = new TrainerOptions { MaxSteps = 1, BatchSize = 4, LogEvery = 1 };
        new Trainer(model, DataTests.LlamaTokenizer(), data, null, options, dir.Path).Run();
        var saved = File.ReadAllBytes(Path.Combine(dir.Path, TrainingCheckpoint.AdapterFolder, "adapter_model.safetensors"));

        using (no_grad()) model.model.layers[0].self_attn.q_proj.Lora.A("default").fill_(float.NaN);
        var e = Assert.Throws<TrainingDivergedException>(() => new Trainer(model, DataTests.LlamaTokenizer(), data, null, options with { MaxSteps = 3 }, dir.Path).Run());
        Assert.Equal("step 1: the training loss is NaN; stopped before the update. Lower --lr or check the data", e.Message);
        Assert.Equal(saved, File.ReadAllBytes(Path.Combine(dir.Path, TrainingCheckpoint.AdapterFolder, "adapter_model.safetensors")));
    }

    [Fact]
    public void EvaluationReportsLossPerplexityAndExactMatchAndEarlyStoppingStops()
    {
        var data = Examples(12);
        using var model = Model();
        var tokenizer = DataTests.LlamaTokenizer();
        var before = Evaluator.Run(model, tokenizer, data, 4);
        Assert.Equal(Math.Exp(before.Loss), before.Perplexity, 6);
        Assert.InRange(before.ExactMatch, 0, 1);

        var options = new TrainerOptions { MaxSteps = 40, BatchSize = 4, LearningRate = 1e-2, LogEvery = 5, EvalEvery = 5, Patience = 1, Metric = EvalMetric.Loss };
        var trainer = new Trainer(model, tokenizer, data, data, options, null);
        var evals = new List<EvalEvent>();
        trainer.Progress += e => { if (e is EvalEvent v) evals.Add(v); };
        var result = trainer.Run();
        Assert.True(result.BestEval!.Loss < before.Loss, $"training on the eval data should lower its loss ({before.Loss} → {result.BestEval.Loss})");
        if (result.StopReason.StartsWith("early stop")) Assert.True(result.Steps < 40);
        Assert.Equal(result.Steps / 5, evals.Count);
    }
}
