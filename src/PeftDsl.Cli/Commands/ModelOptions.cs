using System.CommandLine;
using PeftDsl.Errors;
using PeftDsl.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftDsl.Cli.Commands;

/// <summary><c>--device</c> and <c>--dtype</c>, shared by the commands that load a model.</summary>
public sealed class ModelOptions
{
    /// <summary><c>--device</c>: <c>cpu</c>, <c>cuda</c> or <c>cuda:N</c> (default <c>cpu</c>).</summary>
    public Option<string> Device { get; } = new("--device") { Description = "cpu, cuda or cuda:N", DefaultValueFactory = _ => "cpu" };

    /// <summary><c>--dtype</c>: <c>fp32</c>, <c>bf16</c> or <c>fp16</c>, for weights and compute (default <c>fp32</c>).</summary>
    public Option<string> DType { get; } = new("--dtype") { Description = "fp32, bf16 or fp16 (weights and compute)", DefaultValueFactory = _ => "fp32" };

    /// <summary><c>--quantize</c>: <c>nf4</c> or <c>fp4</c> 4-bit projections (QLoRA's base), or <c>none</c>.</summary>
    public Option<string> Quantize { get; } = new("--quantize") { Description = "Load the attention and MLP projections in 4 bits as bitsandbytes does: nf4 or fp4 (QLoRA's base; --dtype is then the compute dtype), or none", DefaultValueFactory = _ => "none" };

    /// <summary><c>--double-quant</c>: also quantize the 4-bit blocks' scales (bitsandbytes' double quantization).</summary>
    public Option<bool> DoubleQuant { get; } = new("--double-quant") { Description = "With --quantize: also quantize the blocks' scales to 8 bits (bnb_4bit_use_double_quant)" };

    /// <summary>Adds <c>--device</c>, <c>--dtype</c>, <c>--quantize</c> and <c>--double-quant</c> to <paramref name="command"/>.</summary>
    public void AddTo(Command command)
    {
        command.Options.Add(Device);
        command.Options.Add(DType);
        command.Options.Add(Quantize);
        command.Options.Add(DoubleQuant);
    }

    /// <summary>The model placement given by <c>--device</c>, <c>--dtype</c>, <c>--quantize</c> and <c>--double-quant</c>,
    /// checked as <see cref="Parse"/> does.</summary>
    public ModelLoadOptions Read(ParseResult parse) =>
        Parse(parse.GetValue(Device)!, parse.GetValue(DType)!) with { Quantize = ParseQuantize(parse.GetValue(Quantize)!, parse.GetValue(DoubleQuant)) };

    /// <summary><c>--quantize</c> and <c>--double-quant</c> as load options: null for <c>none</c>.</summary>
    public static Quantization.FourBitOptions? ParseQuantize(string quantize, bool doubleQuant)
    {
        var type = quantize.ToLowerInvariant() switch
        {
            "none" => (Quantization.FourBitType?)null,
            "nf4" => Quantization.FourBitType.Nf4,
            "fp4" => Quantization.FourBitType.Fp4,
            _ => throw new PeftDslException($"--quantize: '{quantize}' is not one of nf4, fp4, none (8-bit and other schemes are not supported)"),
        };
        if (type is null && doubleQuant) throw new PeftDslException("--double-quant quantizes the 4-bit scales: it needs --quantize nf4 or fp4");
        return type is { } t ? new Quantization.FourBitOptions(t, doubleQuant) : null;
    }

    /// <summary>Turns a device (<c>cpu</c>, <c>cuda</c>, <c>cuda:N</c>) and a dtype (<c>fp32</c>/<c>float32</c>,
    /// <c>bf16</c>/<c>bfloat16</c>, <c>fp16</c>/<c>float16</c>) into load options; an unknown value, or CUDA asked for where it
    /// is unavailable or the device index is out of range, is a bad-input error.</summary>
    public static ModelLoadOptions Parse(string device, string dtype)
    {
        var type = dtype.ToLowerInvariant() switch
        {
            "fp32" or "float32" => ScalarType.Float32,
            "bf16" or "bfloat16" => ScalarType.BFloat16,
            "fp16" or "float16" => ScalarType.Float16,
            _ => throw new PeftDslException($"--dtype: '{dtype}' is not one of fp32, bf16, fp16"),
        };
        // Checked here: torch.device("cuda") itself throws from deep in the backend when CUDA is missing.
        var match = System.Text.RegularExpressions.Regex.Match(device, @"^(cpu|cuda)(:(\d+))?$");
        if (!match.Success)
            throw new PeftDslException($"--device: '{device}' is not a device (cpu, cuda, cuda:N)");
        if (match.Groups[1].Value == "cpu") return new ModelLoadOptions(type);
        if (!cuda.is_available())
            throw new PeftDslException($"--device {device}: CUDA is not available here (this build uses the CPU libtorch, or no GPU is visible)");
        // Under an MPI launcher, plain "cuda" is the GPU of this rank's local rank: one GPU per rank on each node.
        var local = Environment.GetEnvironmentVariable("MPI_LOCALRANKID") ?? Environment.GetEnvironmentVariable("SLURM_LOCALID");
        // A launcher that binds one GPU per task (CUDA_VISIBLE_DEVICES) leaves each rank a single device: that one.
        var index = match.Groups[3].Success ? int.Parse(match.Groups[3].Value)
            : local is not null && int.TryParse(local, out var rank) && cuda.device_count() > 1 ? rank : 0;
        if (index >= cuda.device_count())
            throw new PeftDslException($"--device {device}: only {cuda.device_count()} CUDA device(s) visible");
        return new ModelLoadOptions(type, torch.device(DeviceType.CUDA, index));
    }
}
