using System.Diagnostics;
using System.Text.Json;
using PeftDsl.Checkpoints;
using PeftDsl.Data;
using PeftDsl.Models.Llama;
using PeftDsl.Tokenization;
using PeftDsl.Training;
using static TorchSharp.torch;

namespace PeftDsl.Cli.Demo;

/// <summary>
/// The demo's base: a tiny Llama (GQA, RoPE, SwiGLU; about 2M parameters) pre-trained here, from scratch, on the
/// embedded WordNet corpus, so that it "knows" the facts the tasks ask about in another form. Pre-training takes a few
/// minutes on 2 cores; the result is a Hugging Face folder, cached under the run folder and reused while the data and
/// these settings are the same.
/// </summary>
public static class BaseModel
{
    /// <summary>The seed of the base's initial weights and pre-training, and of the demo's adapter runs.</summary>
    public const int Seed = 20261126;
    private const string Fingerprint = "peftdsl-base.json";

    /// <summary>The base's <c>config.json</c>: a 4-layer Llama with a 2,000-token vocabulary and 128 positions.</summary>
    public static readonly string ConfigJson = """
        {
          "architectures": ["LlamaForCausalLM"],
          "model_type": "llama",
          "vocab_size": 2000,
          "hidden_size": 192,
          "intermediate_size": 512,
          "num_hidden_layers": 4,
          "num_attention_heads": 6,
          "num_key_value_heads": 2,
          "max_position_embeddings": 128,
          "rms_norm_eps": 1e-06,
          "rope_theta": 10000.0,
          "tie_word_embeddings": true,
          "bos_token_id": 1,
          "eos_token_id": 2,
          "dtype": "float32"
        }
        """;

    /// <summary>The pre-training schedule: 12 epochs of 64 sequences at learning rate 4e-3, loss on every token.</summary>
    public static readonly TrainerOptions Pretraining = new()
    {
        Epochs = 12, BatchSize = 64, LearningRate = 4e-3, WarmupSteps = 50, WeightDecay = 0.01, ClipNorm = 1.0,
        Seed = Seed, LogEvery = 100, AnswerOnlyLoss = false,
    };

    /// <summary>The cached base in <paramref name="directory"/> when it was made from the same data and settings,
    /// else a freshly pre-trained one written there.</summary>
    /// <param name="quick">A few steps only: a smoke test of the pipeline, not a base that knows anything.</param>
    public static string Ensure(string directory, string dataDirectory, string dataFingerprint, TextWriter log, bool quick = false)
    {
        var options = quick ? Pretraining with { Epochs = 1, MaxSteps = 3, WarmupSteps = 0 } : Pretraining;
        var fingerprint = JsonSerializer.Serialize(new { data = dataFingerprint, config = ConfigJson, options = options.ToString() });
        var stamp = Path.Combine(directory, Fingerprint);
        if (File.Exists(stamp) && File.ReadAllText(stamp) == fingerprint && File.Exists(Path.Combine(directory, CheckpointFolder.SingleFile)))
        {
            log.WriteLine($"base: {directory} (pre-trained earlier on the same data; delete it to pre-train again)");
            return directory;
        }
        var tokenizer = TokenizerLoader.FromFolder(dataDirectory, "llama", 2000);
        var lines = File.ReadAllLines(Path.Combine(dataDirectory, "corpus.txt")).Where(l => l.Length > 0).ToList();
        var examples = lines.Select((line, i) =>
            new TokenizedExample("corpus", [tokenizer.Bos!.Value], ExampleTokenizer.AnswerIds(tokenizer, line), $"corpus.txt:{i + 1}")).ToList();
        manual_seed(Seed);
        using var model = new LlamaForCausalLM(LlamaConfig.FromJson(Config.ConfigJson.Parse(ConfigJson, "demo base config")));
        var parameters = model.parameters().Sum(p => p.NumberOfElements);
        log.WriteLine($"base: pre-training a {parameters / 1e6:F1}M-parameter Llama from scratch on {lines.Count:N0} WordNet lines " +
                      (quick ? "(--quick: 3 steps)" : $"({options.Epochs} epochs; a few minutes on 2 cores, once)"));
        var trainer = new Trainer(model, tokenizer, examples, null, options, null);
        var clock = Stopwatch.StartNew();
        trainer.Progress += e =>
        {
            if (e is StepEvent s && (s.Step % 200 == 0 || s.Step == s.TotalSteps))
                log.WriteLine($"  pre-training step {s.Step}/{s.TotalSteps}  loss {s.Loss:F3}  {s.TokensPerSecond:N0} tokens/s  {clock.Elapsed:mm\\:ss}");
        };
        trainer.Run();
        AtomicFolder.Write(directory, staging =>
        {
            File.WriteAllText(Path.Combine(staging, CheckpointFolder.ConfigFile), ConfigJson);
            File.WriteAllText(Path.Combine(staging, "generation_config.json"), """{"bos_token_id": 1, "eos_token_id": 2}""");
            File.Copy(Path.Combine(dataDirectory, "tokenizer.model"), Path.Combine(staging, "tokenizer.model"));
            model.SaveWeights(Path.Combine(staging, CheckpointFolder.SingleFile));
            File.WriteAllText(Path.Combine(staging, Fingerprint), fingerprint);
        }, keepOthers: false);
        log.WriteLine($"base: wrote {directory} in {clock.Elapsed:mm\\:ss} (a Hugging Face folder: config.json, model.safetensors, tokenizer.model)");
        return directory;
    }
}
