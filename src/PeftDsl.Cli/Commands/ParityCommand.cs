using System.CommandLine;
using PeftDsl.Cli.Parity;

namespace PeftDsl.Cli.Commands;

/// <summary><c>peft parity DIR</c>: one line per case, then the totals; exit 1 if any case failed.</summary>
public static class ParityCommand
{
    public static Command Create()
    {
        var dir = new Argument<DirectoryInfo>("dir") { Description = "A fixture folder in the format of tests/fixtures/hf-peft/README.md" };
        var only = new Option<string[]>("--case") { Description = "Run only these cases (by name)", AllowMultipleArgumentsPerToken = true };
        var command = new Command("parity", "Check numerical parity with Hugging Face transformers + peft reference outputs") { dir, only };
        command.SetAction(parse =>
        {
            var names = parse.GetValue(only) ?? [];
            return Program.Guard(() => Run(parse.GetValue(dir)!.FullName, names.Length == 0 ? null : c => names.Contains(c.Name), Console.Out));
        });
        return command;
    }

    public static int Run(string directory, Func<FixtureCase, bool>? filter, TextWriter output)
    {
        int passed = 0, failed = 0, skipped = 0;
        foreach (var result in ParityRunner.Run(directory, filter))
        {
            output.WriteLine(result);
            output.Flush();
            switch (result.Outcome)
            {
                case Outcome.Pass: passed++; break;
                case Outcome.Fail: failed++; break;
                default: skipped++; break;
            }
        }
        output.WriteLine($"{passed} passed, {failed} failed, {skipped} skipped");
        return failed > 0 ? 1 : 0;
    }
}
