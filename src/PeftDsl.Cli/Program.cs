using System.CommandLine;
using PeftDsl.Cli.Commands;
using PeftDsl.Errors;
using PeftDsl.Runtime;

namespace PeftDsl.Cli;

/// <summary>Entry point of the <c>peft</c> tool: builds the command tree and maps failures to exit codes.</summary>
public static class Program
{
    /// <summary>Exit code for bad input (a missing folder, a malformed checkpoint, a bad option): the message says what is wrong.</summary>
    public const int BadInput = 2;

    /// <summary>Exit code for a failure that is not the input's fault (a bug): the message says to rerun with --verbose.</summary>
    public const int InternalError = 1;

    /// <summary>--verbose: errors come with their stack trace.</summary>
    public static readonly Option<bool> Verbose = new("--verbose") { Description = "Show the stack trace of an error", Recursive = true };

    private static bool verbose;

    /// <summary>Parses <paramref name="args"/> and runs the chosen command. Returns its exit code: 0 on success,
    /// <see cref="BadInput"/> (2) for a usage mistake or bad input, <see cref="InternalError"/> (1) otherwise.</summary>
    public static int Main(string[] args)
    {
        var root = new RootCommand("peft: parameter-efficient fine-tuning of transformer language models with TorchSharp")
        {
            Demo.DemoCommand.Create(),
            TrainCommand.Create(),
            EvalCommand.Create(),
            GenerateCommand.Create(),
            InspectCommand.Create(),
            MergeCommand.Create(),
            ParityCommand.Create(),
            BenchCommand.Create(),
            TokenizeCommand.Create(),
        };
        root.Options.Add(Verbose);
        CommandLineErrors.UseStrictNumbers(root);
        var parse = root.Parse(args);
        if (parse.Errors.Count > 0)
        {
            // Usage mistakes follow the same contract as bad files: one error line, exit code 2.
            var command = parse.CommandResult.Command == root ? "peft" : "peft " + parse.CommandResult.Command.Name;
            // Every rank of an mpiexec job parses the same command line: rank 0 alone says what is wrong with it.
            if (!IsSecondaryRank) Console.Error.WriteLine($"error: {CommandLineErrors.Describe(parse)} (see '{command} --help')");
            return BadInput;
        }
        verbose = parse.GetValue(Verbose);
        return parse.Invoke();
    }

    /// <summary>True in a rank other than 0 of an MPI job (mpiexec.mpich or srun set PMI_RANK): messages every rank
    /// would repeat (a bad command line, a Ctrl-C notice) come from rank 0 only.</summary>
    public static bool IsSecondaryRank => Environment.GetEnvironmentVariable("PMI_RANK") is { } rank && rank != "0";

    /// <summary>Runs a command body: bad input becomes one "error:" line and exit code 2; anything else one line and
    /// exit code 1. A stack trace appears only with --verbose.</summary>
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
            if (verbose) Console.Error.WriteLine(e);
            return BadInput;
        }
        catch (OperationCanceledException)
        {
            Console.Error.WriteLine("stopped");
            return InternalError;
        }
        catch (OutOfMemoryException e)
        {
            Console.Error.WriteLine($"error: out of memory ({e.Message.Split('\n')[0]}); try a smaller --batch or --max-length, or a smaller model");
            return InternalError;
        }
        catch (Exception e)
        {
            Console.Error.WriteLine($"error: {e.GetType().Name}: {e.Message.Split('\n')[0]}" + (verbose ? "" : " (rerun with --verbose for the stack trace)"));
            if (verbose) Console.Error.WriteLine(e);
            return InternalError;
        }
    }

    /// <summary>An example line for a command's help: every command shows one.</summary>
    public static string Example(string description, string example) => $"{description}\n\nExample:\n  {example}";
}
