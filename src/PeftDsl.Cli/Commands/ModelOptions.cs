using System.CommandLine;
using PeftDsl.Errors;
using PeftDsl.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftDsl.Cli.Commands;

/// <summary><c>--device</c> and <c>--dtype</c>, shared by the commands that load a model.</summary>
public sealed class ModelOptions
{
    public Option<string> Device { get; } = new("--device") { Description = "cpu, cuda or cuda:N", DefaultValueFactory = _ => "cpu" };

    public Option<string> DType { get; } = new("--dtype") { Description = "fp32, bf16 or fp16 (weights and compute)", DefaultValueFactory = _ => "fp32" };

    public void AddTo(Command command)
    {
        command.Options.Add(Device);
        command.Options.Add(DType);
    }

    public ModelLoadOptions Read(ParseResult parse) => Parse(parse.GetValue(Device)!, parse.GetValue(DType)!);

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
        var index = match.Groups[3].Success ? int.Parse(match.Groups[3].Value) : 0;
        if (index >= cuda.device_count())
            throw new PeftDslException($"--device {device}: only {cuda.device_count()} CUDA device(s) visible");
        return new ModelLoadOptions(type, torch.device(DeviceType.CUDA, index));
    }
}
