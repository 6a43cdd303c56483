using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using PeftDsl.Config;
using PeftDsl.Errors;
using PeftDsl.Generation;
using PeftDsl.Models;
using PeftDsl.Models.Gpt2;
using PeftDsl.Models.Llama;
using PeftDsl.Models.T5;
using PeftDsl.Peft;
using PeftDsl.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftDsl.Cli.Commands;

/// <summary>
/// <c>peft bench</c>: throughput of a forward pass, a training step (forward + backward) and greedy generation with
/// and without the KV cache, on a built-in random model shape or a checkpoint. Numbers are for the machine it runs on;
/// docs/bench.md records measured ones.
/// </summary>
public static class BenchCommand
{
    /// <summary>Random-weight shapes; the names say what they imitate.</summary>
    private static readonly Dictionary<string, (string ModelType, string Json)> Shapes = new()
    {
        ["gpt2-small"] = ("gpt2", """{"vocab_size": 50257, "n_positions": 1024, "n_embd": 768, "n_layer": 12, "n_head": 12}"""),
        ["gpt2-tiny"] = ("gpt2", """{"vocab_size": 4096, "n_positions": 512, "n_embd": 256, "n_layer": 4, "n_head": 4}"""),
        ["llama-tiny"] = ("llama", """{"vocab_size": 4096, "hidden_size": 256, "intermediate_size": 688, "num_hidden_layers": 4, "num_attention_heads": 8, "num_key_value_heads": 2}"""),
        ["t5-small"] = ("t5", """{"vocab_size": 32128, "d_model": 512, "d_kv": 64, "d_ff": 2048, "num_layers": 6, "num_heads": 8}"""),
    };

    public static Command Create()
    {
        var shape = new Option<string>("--shape") { Description = "Built-in random model: " + string.Join(", ", Shapes.Keys), DefaultValueFactory = _ => "gpt2-tiny" };
        var model = new Option<DirectoryInfo?>("--model") { Description = "Benchmark a checkpoint folder instead of a built-in shape" };
        var batch = new Option<int>("--batch") { Description = "Sequences per step", DefaultValueFactory = _ => 4 };
        var length = new Option<int>("--length") { Description = "Tokens per sequence (decoder length 1/4 of it for T5)", DefaultValueFactory = _ => 128 };
        var steps = new Option<int>("--steps") { Description = "Timed steps after one warm-up step", DefaultValueFactory = _ => 5 };
        var newTokens = new Option<int>("--new-tokens") { Description = "Tokens to generate per sequence", DefaultValueFactory = _ => 32 };
        var loraRank = new Option<int>("--lora-r") { Description = "Attach LoRA adapters of this rank (alpha = 2r); the training step then trains only them", DefaultValueFactory = _ => 0 };
        var loraTargets = new Option<string[]>("--lora-targets") { Description = "LoRA targets (module names, NeMo site names, attention, mlp, all)", AllowMultipleArgumentsPerToken = true };
        var adapterCount = new Option<int>("--adapters") { Description = "How many LoRA adapters to attach", DefaultValueFactory = _ => 1 };
        var mixed = new Option<bool>("--mixed") { Description = "Route the rows of each batch through the adapters in turn (a mixed-adapter batch)" };
        var command = new Command("bench", "Measure forward, training-step and generation throughput")
        {
            shape, model, batch, length, steps, newTokens, loraRank, loraTargets, adapterCount, mixed,
        };
        var placement = new ModelOptions();
        placement.AddTo(command);
        command.SetAction(parse => Program.Guard(() => Run(parse.GetValue(shape)!, parse.GetValue(model)?.FullName,
            parse.GetValue(batch), parse.GetValue(length), parse.GetValue(steps), parse.GetValue(newTokens), Console.Out, placement.Read(parse),
            new LoraBench(parse.GetValue(loraRank), parse.GetValue(loraTargets) is { Length: > 0 } t ? t : ["all"], parse.GetValue(adapterCount), parse.GetValue(mixed)))));
        return command;
    }

    /// <summary>LoRA settings of a run: no adapter when <paramref name="Rank"/> is 0.</summary>
    public sealed record LoraBench(int Rank, string[] Targets, int Adapters, bool Mixed)
    {
        public static readonly LoraBench None = new(0, ["all"], 1, false);
    }

    public static int Run(string shape, string? directory, int batch, int length, int steps, int newTokens, TextWriter output,
        ModelLoadOptions? placement = null, LoraBench? lora = null)
    {
        placement ??= ModelLoadOptions.Default;
        lora ??= LoraBench.None;
        if (batch <= 0 || length < 2 || steps <= 0 || newTokens < 0)
            throw new PeftDslException("bench: --batch and --steps must be positive, --length at least 2, --new-tokens 0 or more");
        if (lora.Rank < 0 || lora.Adapters <= 0 || (lora.Rank == 0 && (lora.Mixed || lora.Adapters > 1)))
            throw new PeftDslException("bench: --lora-r must be 0 or more, --adapters positive; --adapters and --mixed need --lora-r");
        manual_seed(0);
        using var scope = NewDisposeScope();
        var model = directory is not null ? StockModels.LoadGenerative(directory, placement) : Build(shape);
        using var _ = (nn.Module)model;
        if (directory is null)
        {
            ((nn.Module)model).to(placement.DType);
            if (placement.Device is { } d) ((nn.Module)model).to(d);
        }
        var device = placement.Device ?? CPU;
        var vocab = model.VocabSize;
        var ids = randint(0, vocab, [batch, length], dtype: ScalarType.Int64, device: device);
        var decoderIds = randint(0, vocab, [batch, Math.Max(2, length / 4)], dtype: ScalarType.Int64, device: device);
        var parameters = ((nn.Module)model).parameters().Sum(p => p.NumberOfElements);
        output.WriteLine($"model {directory ?? shape}: {parameters / 1e6:F1}M parameters, {placement.DType} on {device}, batch {batch} x {length} tokens, {get_num_threads()} CPU threads");
        var rows = AttachLora((LanguageModel)model, lora, batch, output);

        Tensor Loss() => model switch
        {
            CausalLanguageModel causal => causal.Forward(ids, labels: ids, adapterNames: rows).Loss!,
            Seq2SeqLanguageModel seq2seq => seq2seq.Forward(ids, null, decoderIds, decoderIds, adapterNames: rows).Loss!,
            _ => throw new InvalidOperationException(),
        };
        var tokens = (double)batch * length;
        model.eval();
        var forward = Time(steps, device, () => { using var s = NewDisposeScope(); using var g = no_grad(); Loss(); });
        ((nn.Module)model).train();
        var train = Time(steps, device, () => { using var s = NewDisposeScope(); ((nn.Module)model).zero_grad(); Loss().backward(); });
        output.WriteLine($"forward        {tokens / forward,12:N0} tokens/s  {forward * 1000,9:F1} ms/step");
        output.WriteLine($"forward+backward {tokens / train,10:N0} tokens/s  {train * 1000,9:F1} ms/step{(lora.Rank > 0 ? "  (gradients of the adapters only)" : "")}");
        if (newTokens > 0)
        {
            var prompts = Enumerable.Range(0, batch).Select(i => ids[i].narrow(0, 0, Math.Min(length, 32)).cpu().data<long>().ToArray()).ToList();
            foreach (var cache in new[] { true, false })
            {
                var options = new GenerationOptions { MaxNewTokens = newTokens, UseCache = cache };
                var seconds = Time(1, device, () => TextGenerator.Generate(model, prompts, options));
                output.WriteLine($"generate ({(cache ? "cache" : "no cache")}) {batch * newTokens / seconds,8:N0} new tokens/s  ({newTokens} per sequence, {prompts[0].Length}-token prompts)");
            }
        }
        return 0;
    }

    /// <summary>Adds the run's adapters (all trainable, base frozen); returns the per-row adapter names of a mixed batch.</summary>
    private static string[]? AttachLora(LanguageModel model, LoraBench lora, int batch, TextWriter output)
    {
        if (lora.Rank == 0) return null;
        var names = Enumerable.Range(0, lora.Adapters).Select(i => "a" + i).ToArray();
        foreach (var name in names)
        {
            model.Adapters.Add(name, new Peft.Lora.LoraConfig { R = lora.Rank, Alpha = 2 * lora.Rank, TargetModules = lora.Targets });
            model.Adapters.SetTrainable(name, true);
        }
        var trainable = model.TrainableParameters().Sum(p => p.Parameter.NumberOfElements);
        output.WriteLine($"lora: {names.Length} adapter(s), r={lora.Rank} on {string.Join(",", lora.Targets)}, {trainable:N0} trainable parameters" +
                         (lora.Mixed ? ", mixed batch (row i uses adapter i mod " + names.Length + ")" : ", adapter a0 active"));
        return lora.Mixed ? Enumerable.Range(0, batch).Select(i => names[i % names.Length]).ToArray() : null;
    }

    private static IGenerativeModel Build(string shape)
    {
        if (!Shapes.TryGetValue(shape, out var s))
            throw new PeftDslException($"bench: unknown shape '{shape}' (known: {string.Join(", ", Shapes.Keys)})");
        var json = ConfigJson.Parse(s.Json, "bench shape " + shape);
        return s.ModelType switch
        {
            "gpt2" => new Gpt2LMHeadModel(Gpt2Config.FromJson(json)),
            "llama" => new LlamaForCausalLM(LlamaConfig.FromJson(json)),
            _ => new T5ForConditionalGeneration(T5Config.FromJson(json)),
        };
    }

    /// <summary>Mean seconds per call over <paramref name="steps"/> calls, after one untimed warm-up. On a GPU the
    /// clock stops only after the device has finished the queued work.</summary>
    private static double Time(int steps, Device device, Action step)
    {
        step();
        Synchronize(device);
        var clock = Stopwatch.StartNew();
        for (var i = 0; i < steps; i++) step();
        Synchronize(device);
        return clock.Elapsed.TotalSeconds / steps;
    }

    private static void Synchronize(Device device)
    {
        if (device.type == DeviceType.CUDA) cuda.synchronize();
    }
}
