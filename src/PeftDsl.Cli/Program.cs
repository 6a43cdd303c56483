using System.CommandLine;
using PeftDsl.Cli.Commands;
using PeftDsl.Errors;
using PeftDsl.Runtime;

namespace PeftDsl.Cli;

public static class Program
{
    public static int Main(string[] args)
    {
        var root = new RootCommand("peft: parameter-efficient fine-tuning of transformer language models with TorchSharp")
        {
            ParityCommand.Create(),
        };
        try
        {
            TorchRuntime.EnsureNativeLoaded();
            return root.Parse(args).Invoke();
        }
        catch (PeftDslException e)
        {
            Console.Error.WriteLine("error: " + e.Message);
            return 2;
        }
    }
}
