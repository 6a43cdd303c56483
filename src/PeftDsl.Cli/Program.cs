using System.CommandLine;
using PeftDsl.Cli.Commands;
using PeftDsl.Errors;
using PeftDsl.Runtime;

namespace PeftDsl.Cli;

public static class Program
{
    /// <summary>Exit code for bad input (a missing folder, a malformed checkpoint): the message says what is wrong.</summary>
    public const int BadInput = 2;

    public static int Main(string[] args)
    {
        var root = new RootCommand("peft: parameter-efficient fine-tuning of transformer language models with TorchSharp")
        {
            ParityCommand.Create(),
            GenerateCommand.Create(),
            BenchCommand.Create(),
            InspectCommand.Create(),
            MergeCommand.Create(),
        };
        var parse = root.Parse(args);
        if (parse.Errors.Count > 0)
        {
            // Usage mistakes follow the same contract as bad files: one error line, exit code 2.
            var command = parse.CommandResult.Command == root ? "peft" : "peft " + parse.CommandResult.Command.Name;
            Console.Error.WriteLine($"error: {string.Join("; ", parse.Errors.Select(e => e.Message))} (see '{command} --help')");
            return BadInput;
        }
        return parse.Invoke();
    }

    /// <summary>Runs a command body: bad input becomes one "error:" line and exit code 2, never a stack trace.</summary>
    public static int Guard(Func<int> body)
    {
        try
        {
            TorchRuntime.EnsureNativeLoaded();
            return body();
        }
        catch (PeftDslException e)
        {
            Console.Error.WriteLine("error: " + e.Message);
            return BadInput;
        }
    }
}
