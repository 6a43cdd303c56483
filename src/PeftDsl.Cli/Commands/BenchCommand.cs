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
using PeftDsl.Modules;
using PeftDsl.Peft;
using PeftDsl.Quantization;
using PeftDsl.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftDsl.Cli.Commands;

/// <summary>
/// <c>peft bench</c>: throughput of a forward pass, a training step (forward + backward) and greedy generation with
/// and without the KV cache, on a built-in random model shape or a checkpoint. Numbers are for the machine it runs on;
/// docs/bench.md records measured ones.
/// </summary>
public static partial class BenchCommand
{
    /// <summary>Random-weight shapes; the names say what they imitate. The base model's dropout is 0, as in
    /// bench/gpu/hf_reference.py's configs, so both sides time the same step.</summary>
    internal static readonly Dictionary<string, (string ModelType, string Json)> Shapes = new()
    {
        ["gpt2-small"] = ("gpt2", """{"vocab_size": 50257, "n_positions": 1024, "n_embd": 768, "n_layer": 12, "n_head": 12, "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0}"""),
        ["gpt2-tiny"] = ("gpt2", """{"vocab_size": 4096, "n_positions": 512, "n_embd": 256, "n_layer": 4, "n_head": 4, "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0}"""),
        ["llama-tiny"] = ("llama", """{"vocab_size": 4096, "hidden_size": 256, "intermediate_size": 688, "num_hidden_layers": 4, "num_attention_heads": 8, "num_key_value_heads": 2}"""),
        ["t5-small"] = ("t5", """{"vocab_size": 32128, "d_model": 512, "d_kv": 64, "d_ff": 2048, "num_layers": 6, "num_heads": 8, "dropout_rate": 0.0}"""),
        ["t5-base"] = ("t5", """{"vocab_size": 32128, "d_model": 768, "d_kv": 64, "d_ff": 3072, "num_layers": 12, "num_decoder_layers": 12, "num_heads": 12, "feed_forward_proj": "relu", "tie_word_embeddings": true, "dropout_rate": 0.0}"""),
        ["qwen2.5-1.5b"] = ("qwen2", """{"vocab_size": 151936, "hidden_size": 1536, "intermediate_size": 8960, "num_hidden_layers": 28, "num_attention_heads": 12, "num_key_value_heads": 2, "max_position_embeddings": 32768, "rope_theta": 1000000.0, "tie_word_embeddings": true}"""),
        ["qwen3-1.7b"] = ("qwen3", """{"vocab_size": 151936, "hidden_size": 2048, "intermediate_size": 6144, "num_hidden_layers": 28, "num_attention_heads": 16, "num_key_value_heads": 8, "head_dim": 128, "max_position_embeddings": 40960, "rope_theta": 1000000.0, "tie_word_embeddings": true}"""),
        ["gemma2-2b"] = ("gemma2", """{"vocab_size": 256000, "hidden_size": 2304, "intermediate_size": 9216, "num_hidden_layers": 26, "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 256, "query_pre_attn_scalar": 256, "sliding_window": 4096, "attn_logit_softcapping": 50.0, "final_logit_softcapping": 30.0, "max_position_embeddings": 8192}"""),
        ["gemma3-1b"] = ("gemma3_text", """{"vocab_size": 262144, "hidden_size": 1152, "intermediate_size": 6912, "num_hidden_layers": 26, "num_attention_heads": 4, "num_key_value_heads": 1, "head_dim": 256, "query_pre_attn_scalar": 256, "sliding_window": 512, "sliding_window_pattern": 6, "rope_theta": 1000000, "rope_local_base_freq": 10000, "max_position_embeddings": 32768}"""),
        ["phi3-mini"] = ("phi3", """{"vocab_size": 32064, "hidden_size": 3072, "intermediate_size": 8192, "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 32, "max_position_embeddings": 4096, "original_max_position_embeddings": 4096, "sliding_window": 2047, "rms_norm_eps": 1e-05}"""),
        ["llama3-8b"] = ("llama", """{"vocab_size": 128256, "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8, "max_position_embeddings": 8192, "rope_theta": 500000.0}"""),
        ["tinyllama-1.1b"] = ("llama", """{"vocab_size": 32000, "hidden_size": 2048, "intermediate_size": 5632, "num_hidden_layers": 22, "num_attention_heads": 32, "num_key_value_heads": 4, "max_position_embeddings": 2048}"""),
    };

    /// <summary>Builds <c>peft bench</c> with its options (<c>--shape</c>, <c>--model</c>, <c>--batch</c>, <c>--length</c>,
    /// <c>--steps</c>, <c>--method</c>, …, plus <c>--device</c>/<c>--dtype</c>).</summary>
    public static Command Create()
    {
        var shape = new Option<string>("--shape") { Description = "Built-in random model: " + string.Join(", ", Shapes.Keys), DefaultValueFactory = _ => "gpt2-tiny" };
        var model = new Option<DirectoryInfo?>("--model") { Description = "Benchmark a checkpoint folder instead of a built-in shape" };
        var batch = new Option<int>("--batch") { Description = "Sequences per step", DefaultValueFactory = _ => 4 };
        var length = new Option<int>("--length") { Description = "Tokens per sequence (decoder length 1/4 of it for T5)", DefaultValueFactory = _ => 128 };
        var steps = new Option<int>("--steps") { Description = "Timed steps after one warm-up step", DefaultValueFactory = _ => 5 };
        var newTokens = new Option<int>("--new-tokens") { Description = "Tokens to generate per sequence", DefaultValueFactory = _ => 32 };
        var method = new Option<string>("--method") { Description = "none (the full fine-tuning step), or the PEFT step of " + string.Join(", ", PeftBench.Methods.Skip(1)), DefaultValueFactory = _ => "none" };
        var loraRank = new Option<int?>("--lora-r") { Description = "LoRA/DoRA rank (alpha = 2r; default 16); alone, implies --method lora" };
        var virtualTokens = new Option<int>("--virtual-tokens") { Description = "Virtual tokens of --method prompt, ptuning and prefix", DefaultValueFactory = _ => 20 };
        var json = new Option<FileInfo?>("--json") { Description = "Also write the figures to this JSON file" };
        var loraTargets = new Option<string[]>("--lora-targets") { Description = "LoRA/DoRA targets, space- or comma-separated, as --targets of train: module names or dotted suffixes, NeMo site names, attention, mlp, all; or one re:REGEX (default all)", AllowMultipleArgumentsPerToken = true };
        var adapterCount = new Option<int>("--adapters") { Description = "How many LoRA adapters to attach", DefaultValueFactory = _ => 1 };
        var mixed = new Option<bool>("--mixed") { Description = "Route the rows of each batch through the adapters in turn (a mixed-adapter batch)" };
        var plainLoss = new Option<bool>("--plain-loss") { Description = "Compute the causal loss from the whole (B, T, V) logits, as before chunking (to compare memory and time with the default chunked loss)" };
        var checkpointing = new Option<bool>("--gradient-checkpointing") { Description = "Recompute each block in backward instead of keeping its activations, as peft train --gradient-checkpointing does" };
        var packing = new Option<bool>("--packing") { Description = "Also time the training step on --batch examples of mixed lengths (1/8 to all of --length), one to a row and packed" };
        var command = new Command("bench", Program.Example("Measure forward, training-step and generation throughput", "peft bench --shape gpt2-tiny --lora-r 16 --adapters 4 --mixed"))
        {
            shape, model, batch, length, steps, newTokens, method, loraRank, loraTargets, adapterCount, mixed, virtualTokens, packing, plainLoss, checkpointing, json,
        };
        var placement = new ModelOptions();
        placement.AddTo(command);
        command.SetAction(parse => Program.Guard(() => Run(parse.GetValue(shape)!, parse.GetValue(model)?.FullName,
            parse.GetValue(batch), parse.GetValue(length), parse.GetValue(steps), parse.GetValue(newTokens), Console.Out, placement.Read(parse),
            PeftBench.From(parse.GetValue(method)!, parse.GetValue(loraRank), parse.GetValue(loraTargets), parse.GetValue(adapterCount),
                parse.GetValue(mixed), parse.GetValue(virtualTokens)),
            parse.GetValue(json)?.FullName, parse.GetValue(packing), parse.GetValue(plainLoss), parse.GetValue(checkpointing))));
        return command;
    }

    /// <summary>What a run trains: nothing added (<c>none</c>, the full fine-tuning step), or the PEFT step of LoRA,
    /// DoRA, IA3, prompt tuning, P-tuning (peft's MLP encoder) or prefix tuning, with peft's defaults otherwise.</summary>
    public sealed record PeftBench(string Method, int Rank, string[] Targets, int Adapters, bool Mixed, int VirtualTokens)
    {
        /// <summary>The values <c>--method</c> accepts, <c>none</c> first.</summary>
        public static readonly string[] Methods = ["none", "lora", "dora", "ia3", "prompt", "ptuning", "prefix"];

        /// <summary>The full fine-tuning step with no adapter: the run when no <c>--method</c> is given.</summary>
        public static readonly PeftBench None = new("none", 0, ["all"], 1, false, 0);

        /// <summary>True for <c>lora</c> and <c>dora</c>, the methods that take <c>--lora-r</c>, <c>--adapters</c> and <c>--mixed</c>.</summary>
        public bool IsLora => Method is "lora" or "dora";

        /// <summary>True for <c>prompt</c>, <c>ptuning</c> and <c>prefix</c>, which add <c>--virtual-tokens</c>.</summary>
        public bool IsPrompt => Method is "prompt" or "ptuning" or "prefix";

        /// <summary>Checks the command-line values and combines them: <c>--lora-r</c> alone implies <c>--method lora</c>, the rank
        /// defaults to 16 and the targets to <c>all</c>. Throws a bad-input error for a value that does not fit the method.</summary>
        public static PeftBench From(string method, int? rank, string[]? targets, int adapters, bool mixed, int virtualTokens)
        {
            if (!Methods.Contains(method))
                throw new PeftDslException($"--method: '{method}' is not one of {string.Join(", ", Methods)}");
            if (rank is { } r && r <= 0) throw new PeftDslException($"--lora-r must be a positive rank, got {r}");
            if (virtualTokens <= 0) throw new PeftDslException($"--virtual-tokens must be positive, got {virtualTokens}");
            if (method == "none" && (rank is not null || targets is { Length: > 0 })) method = "lora";
            var lora = method is "lora" or "dora";
            if (!lora && (rank is not null || targets is { Length: > 0 }))
                throw new PeftDslException($"--lora-r and --lora-targets are for --method lora or dora, not {method}");
            if (!lora && (adapters != 1 || mixed))
                throw new PeftDslException($"--adapters and --mixed are for --method lora or dora, not {method}");
            return new PeftBench(method, lora ? rank ?? 16 : 0, targets is { Length: > 0 } t ? t : ["all"], adapters, mixed, virtualTokens);
        }
    }

    /// <summary>Runs the benchmark on a built-in <paramref name="shape"/>, or on the checkpoint in <paramref name="directory"/>
    /// when given: timed steps after a warm-up, one line per figure written to <paramref name="output"/>, and the figures as JSON
    /// to <paramref name="jsonPath"/> when given. Returns 0; bad sizes or options throw a bad-input error.</summary>
    /// <param name="packing">Also time the step on examples of mixed lengths, padded and packed (<see cref="PackingStep"/>).</param>
    /// <param name="checkpointing">Activation checkpointing in the training step (<see cref="LanguageModel.GradientCheckpointing"/>).</param>
    public static int Run(string shape, string? directory, int batch, int length, int steps, int newTokens, TextWriter output,
        ModelLoadOptions? placement = null, PeftBench? peft = null, string? jsonPath = null, bool packing = false, bool plainLoss = false,
        bool checkpointing = false)
    {
        // Under mpiexec.mpich every rank runs the same bench and the PEFT step sums the gradient over ranks, as
        // peft train does; rank 0 reports.
        return JobRanks.Run(ranks => Run(shape, directory, batch, length, steps, newTokens, ranks.Rank == 0 ? output : TextWriter.Null,
            placement, peft, ranks.Rank == 0 ? jsonPath : null, ranks, packing, plainLoss, checkpointing));
    }

    private static int Run(string shape, string? directory, int batch, int length, int steps, int newTokens, TextWriter output,
        ModelLoadOptions? placement, PeftBench? peft, string? jsonPath, Distributed.ICommunicator ranks, bool packing, bool plainLoss,
        bool checkpointing)
    {
        placement ??= ModelLoadOptions.Default;
        peft ??= PeftBench.None;
        if (batch <= 0 || length < 2 || steps <= 0 || newTokens < 0)
            throw new PeftDslException("bench: --batch and --steps must be positive, --length at least 2, --new-tokens 0 or more");
        // Checked before the run: a path that cannot be written would otherwise fail only after every timing.
        if (jsonPath is not null && Path.GetDirectoryName(Path.GetFullPath(jsonPath)) is { } jsonFolder && !Directory.Exists(jsonFolder))
            throw new PeftDslException($"--json {jsonPath}: the folder {jsonFolder} does not exist");
        if (peft.Adapters <= 0 || (!peft.IsLora && (peft.Mixed || peft.Adapters > 1)))
            throw new PeftDslException("bench: --adapters must be positive; --adapters and --mixed need --method lora or dora");
        manual_seed(0);
        // Peak GPU memory through NVML, sampled from before the model reaches the device.
        using var memory = placement.Device is { type: DeviceType.CUDA } gpu ? Bench.GpuMemorySampler.Start(Math.Max(0, (int)gpu.index)) : null;
        using var scope = NewDisposeScope();
        var model = directory is not null ? StockModels.LoadGenerative(directory, placement) : Build(shape, WeightInit.None);
        using var _ = (nn.Module)model;
        if (directory is null) Fill((nn.Module)model, shape, placement);
        // What building or loading the model cost in host memory: the resident high-water mark so far (the process's).
        var buildPeak = ProcessMemory.PeakResidentBytes();
        var device = placement.Device ?? CPU;
        if (packing) CheckPacking(model, peft);
        if (checkpointing && peft.Method == "prefix")
            throw new PeftDslException("bench: --gradient-checkpointing cannot be combined with --method prefix: the prefix's keys and values reach every layer through the KV cache, which a recomputed block would read twice");
        ((LanguageModel)model).GradientCheckpointing = checkpointing;
        var vocab = model.VocabSize;
        // Sizes no run can use are refused before anything is allocated (an allocation failure would end in native frames).
        // Virtual tokens take positions: in front of every sequence (prompt tuning, P-tuning) or in the cache (prefix
        // tuning, whose keys and values sit at positions 0 to P − 1, as in transformers).
        var prepended = peft.IsPrompt ? peft.VirtualTokens : 0;
        if (model is CausalLanguageModel { PositionLimit: { } limit } && prepended + length + newTokens > limit)
            throw new PeftDslException($"bench: --length {length} plus --new-tokens {newTokens}" + (peft.IsPrompt ? $" plus --virtual-tokens {peft.VirtualTokens}" : "") +
                                       $" exceed the model's {limit} positions");
        // The chunked loss never holds the whole logits, but one layer's hidden states must fit all the same.
        var memoryGiB = (double)GC.GetGCMemoryInfo().TotalAvailableMemoryBytes / (1L << 30);
        var wholeLogits = plainLoss || model is not CausalLanguageModel;
        var width = wholeLogits ? vocab : ((nn.Module)model).parameters().Where(p => p.dim() == 2 && p.shape[0] == vocab).Select(p => p.shape[1]).DefaultIfEmpty(1).First();
        var neededGiB = (double)batch * length * width * 4 / (1L << 30);
        if (device.type == DeviceType.CPU && neededGiB > memoryGiB)
            throw new PeftDslException(wholeLogits
                ? $"bench: --batch {batch} × --length {length} × vocabulary {vocab} needs {neededGiB:F1} GiB for the fp32 logits alone; this machine has {memoryGiB:F1} GiB"
                : $"bench: --batch {batch} × --length {length} × hidden size {width} needs {neededGiB:F1} GiB for one layer's fp32 hidden states alone; this machine has {memoryGiB:F1} GiB");
        var ids = randint(0, vocab, [batch, length], dtype: ScalarType.Int64, device: device);
        var decoderIds = randint(0, vocab, [batch, Math.Max(2, length / 4)], dtype: ScalarType.Int64, device: device);
        // A 4-bit projection's weight tensor is empty: its values are counted from its quantized shape.
        var fourBits = FourBitModel.Projections((nn.Module)model).Where(l => l.FourBit is not null).ToList();
        var parameters = ((nn.Module)model).parameters().Sum(p => p.NumberOfElements) + fourBits.Sum(l => l.FourBit!.Elements);
        output.WriteLine($"model {directory ?? shape}: {parameters / 1e6:F1}M parameters, {placement.DType} on {device}, batch {batch} x {length} tokens, {get_num_threads()} CPU threads" +
                         (placement.Quantize is { } fb ? $", {FourBitCodes.Name(fb.Type)}{(fb.DoubleQuant ? " (double quant)" : "")} projections in {FourBitModel.Bytes((nn.Module)model) / (double)(1L << 30):F2} GiB" : "") +
                         (model is CausalLanguageModel ? (plainLoss ? ", plain loss (whole logits)" : ", chunked loss") : "") +
                         (checkpointing ? ", gradient checkpointing" : ""));
        var rows = Attach((LanguageModel)model, peft, batch, output);

        Tensor Loss() => model switch
        {
            // As training computes it: chunked, the (B, T, V) logits never exist; --plain-loss materialises them.
            CausalLanguageModel causal => plainLoss ? causal.Forward(ids, labels: ids, adapterNames: rows).Loss! : causal.Loss(ids, null, ids, rows),
            Seq2SeqLanguageModel seq2seq => seq2seq.Forward(ids, null, decoderIds, decoderIds, adapterNames: rows).Loss!,
            _ => throw new InvalidOperationException(),
        };
        var tokens = (double)batch * length;
        // On the CPU the peak is the resident high-water mark over the timed part: reset here, read after the steps.
        var onCpu = device.type == DeviceType.CPU;
        var peakReset = onCpu && ProcessMemory.ResetPeak();
        model.eval();
        var (forward, forwardHost) = TimeWithHost(steps, device, () => { using var s = NewDisposeScope(); using var g = no_grad(); Loss(); });
        ((nn.Module)model).train();
        var allReduce = new List<double>();
        // On GPUs the gradient all-reduce runs over NCCL, as in training.
        var onDevice = Distributed.Communicator.ForDevice(ranks, device);
        using var nccl = onDevice == ranks ? null : onDevice;
        var step = TrainStep((nn.Module)model, peft.Method != "none", Loss, onDevice, device, allReduce);
        var (train, trainHost) = TimeWithHost(steps, device, step.Step);
        step.Dispose();
        var hostPeak = onCpu ? ProcessMemory.PeakResidentBytes() : null;
        var allReduceMs = ranks.Size > 1 && allReduce.Count > 1 ? Median(allReduce.Skip(1).ToList()) * 1000 : (double?)null;
        var packed = packing ? PackingStep(model, peft, batch, length, steps, device, onDevice) : null;
        output.WriteLine($"forward          {tokens / forward,10:N0} tokens/s  {forward * 1000,9:F1} ms/step (median of {steps})");
        output.WriteLine($"training step    {tokens / train,10:N0} tokens/s  {train * 1000,9:F1} ms/step (forward, backward, AdamW on " +
                         (peft.Method != "none" ? "the trainable flat buffer)" : "every parameter)"));
        if (allReduceMs is { } reduce)
            output.WriteLine($"all-reduce       {reduce,9:F2} ms/step of the training step, {ranks.Size} ranks ({(nccl is null ? "MPI" : "NCCL")}), the flat gradient buffer " +
                             $"({((nn.Module)model).parameters().Where(p => p.requires_grad).Sum(p => p.NumberOfElements) * 4 / 1e6:F1} MB)");
        if (packed is { } p)
            output.WriteLine($"mixed lengths    {p.RealTokens / p.PaddedSeconds,10:N0} real tokens/s one to a row ({p.PaddedRows} x {p.PaddedLength}), " +
                             $"{p.RealTokens / p.PackedSeconds:N0} packed ({p.PackedRows} x {p.PackedLength}): {p.PaddedSeconds / p.PackedSeconds:F2}x " +
                             $"({p.RealTokens} tokens in {batch} example{(batch == 1 ? "" : "s")} of {p.Shortest}–{p.Longest})" +
                             (p.PackedRows == p.PaddedRows ? "; no two examples fit one row, so nothing was packed and the ratio is noise" : ""));
        if (device.type == DeviceType.CUDA)
            output.WriteLine($"host queue time  forward {forwardHost * 1000:F1} ms, training step {trainHost * 1000:F1} ms (of {forward * 1000:F1} and {train * 1000:F1} ms: close means host-bound)");
        if (buildPeak is { } built)
            output.WriteLine($"peak while built {built / (double)(1L << 30),10:F2} GiB (VmHWM from the start until the model was built or loaded)");
        if (hostPeak is { } peak)
            output.WriteLine($"peak resident    {peak / (double)(1L << 30),10:F2} GiB (VmHWM " +
                             (peakReset ? "over the timed forward and training steps)" : "since the process started: it could not be reset)"));
        if (memory is not null)
            output.WriteLine($"peak GPU memory  {memory.PeakBytes / (double)(1L << 30),10:F2} GiB (NVML: what the run added to the device's use, CUDA context included)");
        var generation = new Dictionary<string, double>();
        if (newTokens > 0)
        {
            var prompts = Enumerable.Range(0, batch).Select(i => ids[i].narrow(0, 0, Math.Min(length, 32)).cpu().data<long>().ToArray()).ToList();
            foreach (var cache in new[] { true, false })
            {
                var options = new GenerationOptions { MaxNewTokens = newTokens, UseCache = cache };
                var seconds = Time(3, device, () => TextGenerator.Generate(model, prompts, options));
                generation[cache ? "cache" : "no_cache"] = batch * newTokens / seconds;
                output.WriteLine($"generate ({(cache ? "cache" : "no cache")}) {batch * newTokens / seconds,8:N0} new tokens/s  ({newTokens} per sequence, {prompts[0].Length}-token prompts, median of 3)");
            }
        }
        if (jsonPath is not null)
            File.WriteAllText(jsonPath, System.Text.Json.JsonSerializer.Serialize(new Dictionary<string, object?>
            {
                ["shape"] = directory ?? shape, ["method"] = peft.Method, ["device"] = device.ToString(),
                ["loss"] = model is CausalLanguageModel && !plainLoss ? "chunked" : "plain",
                ["gradient_checkpointing"] = checkpointing,
                ["quantize"] = placement.Quantize is { } qz ? FourBitCodes.Name(qz.Type) + (qz.DoubleQuant ? "+double" : "") : null,
                ["dtype"] = placement.DType.ToString(), ["batch"] = batch, ["length"] = length,
                ["forward_ms"] = forward * 1000, ["train_step_ms"] = train * 1000, ["tokens_per_s"] = tokens / train,
                ["forward_host_ms"] = forwardHost * 1000, ["train_step_host_ms"] = trainHost * 1000,
                // GPU: NVML's device use, sampled (TorchSharp 0.107 exposes no CUDA memory statistics); CPU: VmHWM.
                ["peak_bytes"] = memory?.PeakBytes ?? hostPeak,
                ["build_peak_bytes"] = buildPeak,
                ["peak_bytes_source"] = memory is not null ? "nvml" : hostPeak is null ? null : peakReset ? "vmhwm_timed" : "vmhwm_process",
                ["generate_new_tokens_per_s"] = generation,
                // Median time of the step's gradient all-reduce over ranks; null for one process.
                ["ranks"] = ranks.Size, ["allreduce_ms"] = allReduceMs,
                ["packing"] = packed is { } pk ? new Dictionary<string, object>
                {
                    ["real_tokens"] = pk.RealTokens, ["padded_step_ms"] = pk.PaddedSeconds * 1000, ["packed_step_ms"] = pk.PackedSeconds * 1000,
                    ["padded_rows"] = pk.PaddedRows, ["packed_rows"] = pk.PackedRows,
                } : null,
            }, new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));
        return 0;
    }

    /// <summary>One full optimizer step: the PEFT step (AdamW on the adapters' flat buffer) or full fine-tuning
    /// (TorchSharp's AdamW on every parameter).</summary>
    /// <param name="allReduce">Receives the seconds each step's all-reduce took (with several ranks).</param>
    private static (Action Step, Action Dispose) TrainStep(nn.Module model, bool peft, Func<Tensor> loss,
        Distributed.ICommunicator ranks, Device device, List<double> allReduce)
    {
        if (peft)
        {
            var flat = Training.FlatParameters.Of(model);
            var adamw = new Training.FlatAdamW(flat);
            return (() =>
            {
                using var s = NewDisposeScope();
                flat.ZeroGrad();
                Autograd.Backward(loss());
                if (ranks.Size > 1)
                {
                    // Timed on its own: the device's queue is drained first, so the clock holds the all-reduce only.
                    Synchronize(device);
                    var clock = Stopwatch.StartNew();
                    ranks.AllReduceSum(flat.Grads);
                    Synchronize(device);
                    allReduce.Add(clock.Elapsed.TotalSeconds);
                }
                flat.ClipGradNorm(1.0);
                adamw.Step(1e-4);
            }, () => { adamw.Dispose(); flat.Dispose(); });
        }
        var optimizer = optim.AdamW(model.parameters(), lr: 1e-5);
        return (() =>
        {
            using var s = NewDisposeScope();
            optimizer.zero_grad();
            Autograd.Backward(loss());
            optimizer.step();
        }, () => optimizer.Dispose());
    }

    /// <summary>Adds the run's method (trainable, base frozen); returns the per-row adapter names of a mixed batch.</summary>
    private static string[]? Attach(LanguageModel model, PeftBench peft, int batch, TextWriter output)
    {
        switch (peft.Method)
        {
            case "none":
                return null;
            case "ia3":
                model.Ia3.Add("a0", new Peft.Ia3.Ia3Config());
                output.WriteLine($"ia3: peft's default targets, {Trainable(model):N0} trainable parameters");
                return null;
            case "prompt" or "ptuning" or "prefix":
                var config = new Peft.Prompts.PromptConfig
                {
                    Method = peft.Method switch
                    {
                        "prompt" => Peft.Prompts.PromptMethod.PromptTuning,
                        "ptuning" => Peft.Prompts.PromptMethod.PTuning,
                        _ => Peft.Prompts.PromptMethod.PrefixTuning,
                    },
                    NumVirtualTokens = peft.VirtualTokens,
                };
                model.Prompts.Add("a0", config, source: "--method/--virtual-tokens");
                output.WriteLine($"{peft.Method}: {peft.VirtualTokens} virtual tokens, {Trainable(model):N0} trainable parameters");
                return null;
        }
        var names = Enumerable.Range(0, peft.Adapters).Select(i => "a" + i).ToArray();
        foreach (var name in names)
        {
            var (modules, pattern) = Peft.Lora.LoraTargets.Parse(peft.Targets, "--lora-targets");
            model.Adapters.Add(name, new Peft.Lora.LoraConfig
            {
                R = peft.Rank, Alpha = 2 * peft.Rank, TargetModules = modules, TargetPattern = pattern, UseDora = peft.Method == "dora",
            }, "--lora-targets");
            model.Adapters.SetTrainable(name, true);
        }
        output.WriteLine($"{peft.Method}: {names.Length} adapter(s), r={peft.Rank} on {string.Join(",", peft.Targets)}, {Trainable(model):N0} trainable parameters" +
                         (peft.Mixed ? ", mixed batch (row i uses adapter i mod " + names.Length + ")" : ", adapter a0 active"));
        return peft.Mixed ? Enumerable.Range(0, batch).Select(i => names[i % names.Length]).ToArray() : null;
    }

    private static long Trainable(LanguageModel model) => model.TrainableParameters().Sum(p => p.Parameter.NumberOfElements);

    /// <summary>A built-in random-weight model of the named shape (fp32, on the CPU).</summary>
    /// <param name="init"><c>None</c> leaves the weights unwritten (so not yet resident) for <see cref="Fill"/>.</param>
    internal static IGenerativeModel Build(string shape, WeightInit init = WeightInit.Normal)
    {
        if (!Shapes.TryGetValue(shape, out var s))
            throw new PeftDslException($"bench: unknown shape '{shape}' (known: {string.Join(", ", Shapes.Keys)})");
        var json = ConfigJson.Parse(s.Json, "bench shape " + shape);
        return s.ModelType switch
        {
            "gpt2" => new Gpt2LMHeadModel(Gpt2Config.FromJson(json), init),
            "llama" => new LlamaForCausalLM(LlamaConfig.FromJson(json), init),
            "qwen2" => new Models.Qwen2.Qwen2ForCausalLM(Models.Qwen2.Qwen2Config.FromJson(json), init),
            "qwen3" => new Models.Qwen3.Qwen3ForCausalLM(Models.Qwen3.Qwen3Config.FromJson(json), init),
            "gemma2" => new Models.Gemma2.Gemma2ForCausalLM(Models.Gemma2.Gemma2Config.FromJson(json), init),
            "gemma3_text" => new Models.Gemma3.Gemma3ForCausalLM(Models.Gemma3.Gemma3Config.FromJson(json), init),
            "phi3" => new Models.Phi3.Phi3ForCausalLM(Models.Phi3.Phi3Config.FromJson(json), init),
            _ => new T5ForConditionalGeneration(T5Config.FromJson(json), init),
        };
    }

    /// <summary>
    /// Gives a built, unwritten random model its weights in the placement's dtype and device, refusing first, in one
    /// line, a model whose weights alone exceed the machine's memory. With <c>--quantize</c> the projections are filled
    /// and quantized one at a time (<see cref="FourBitModel.FillAtRandom"/>), so the full-precision model never exists.
    /// </summary>
    private static void Fill(nn.Module model, string shape, ModelLoadOptions placement)
    {
        var needed = FourBitModel.EstimateBytes(model, placement.DType, placement.Quantize);
        MemoryCheck.RequireFits(needed, $"bench --shape {shape} ({model.parameters().Sum(p => p.NumberOfElements) / 1e9:F2}B parameters, " +
                                        $"{placement.DType}{(placement.Quantize is { } q ? $", {FourBitCodes.Name(q.Type)} projections" : "")})", placement.Device);
        var device = placement.Device ?? CPU;
        var projections = placement.Quantize is null ? [] : FourBitModel.EmptyProjections(model);
        model.to(placement.DType);
        model.to(device);
        WeightInitializer.Apply(model, WeightInit.Normal);   // emptied projections have nothing to fill
        if (placement.Quantize is { } fourBit) FourBitModel.FillAtRandom(projections, fourBit, placement.DType, device);
    }

    /// <summary>The median seconds per call over <paramref name="steps"/> calls, after one untimed warm-up. On a GPU
    /// each clock stops only after the device has finished the queued work.</summary>
    private static double Time(int steps, Device device, Action step) => TimeWithHost(steps, device, step).Seconds;

    /// <summary>Median seconds per step, and the median time the host took to queue it (until the step returned,
    /// before synchronising): on a GPU, a queue time close to the step time means the step is bound by host dispatch.</summary>
    private static (double Seconds, double HostSeconds) TimeWithHost(int steps, Device device, Action step)
    {
        step();
        Synchronize(device);
        var times = new List<double>();
        var host = new List<double>();
        for (var i = 0; i < steps; i++)
        {
            var clock = Stopwatch.StartNew();
            step();
            host.Add(clock.Elapsed.TotalSeconds);
            Synchronize(device);
            times.Add(clock.Elapsed.TotalSeconds);
        }
        return (Median(times), Median(host));
    }

    private static double Median(List<double> values)
    {
        values.Sort();
        return values.Count % 2 == 1 ? values[values.Count / 2] : (values[values.Count / 2 - 1] + values[values.Count / 2]) / 2;
    }

    private static void Synchronize(Device device)
    {
        if (device.type == DeviceType.CUDA) cuda.synchronize();
    }
}
