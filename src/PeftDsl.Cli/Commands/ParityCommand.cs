using System.CommandLine;
using PeftDsl.Cli.Parity;

namespace PeftDsl.Cli.Commands;

/// <summary><c>peft parity DIR</c>: one line per case, then the totals; exit 1 if any case failed.</summary>
public static class ParityCommand
{
    /// <summary>Edit distance, for "did you mean".</summary>
    private static int Distance(string a, string b)
    {
        var row = Enumerable.Range(0, b.Length + 1).ToArray();
        for (var i = 1; i <= a.Length; i++)
        {
            var previous = row[0];
            row[0] = i;
            for (var j = 1; j <= b.Length; j++)
            {
                var current = row[j];
                row[j] = Math.Min(Math.Min(row[j] + 1, row[j - 1] + 1), previous + (a[i - 1] == b[j - 1] ? 0 : 1));
                previous = current;
            }
        }
        return row[b.Length];
    }

    /// <summary>Builds <c>peft parity DIR [--case NAME…]</c>: exit code 0 when no case failed, 1 when one did, 2 for bad
    /// input such as a missing folder or a <c>--case</c> naming no case.</summary>
    public static Command Create()
    {
        var dir = new Argument<DirectoryInfo>("dir") { Description = "A fixture folder in the format of tests/fixtures/hf-peft/README.md" };
        var only = new Option<string[]>("--case") { Description = "Run only these cases (by name)", AllowMultipleArgumentsPerToken = true };
        var command = new Command("parity", Program.Example("Check numerical parity with Hugging Face transformers + peft reference outputs", "peft parity tests/fixtures/hf-peft --case gpt2.lora")) { dir, only };
        command.SetAction(parse =>
        {
            var names = parse.GetValue(only) ?? [];
            return Program.Guard(() => Run(parse.GetValue(dir)!.FullName, names.Length == 0 ? null : c => names.Contains(c.Name), Console.Out, names));
        });
        return command;
    }

    /// <summary>Runs the cases of the fixture folder <paramref name="directory"/> that <paramref name="filter"/> accepts (all when
    /// null), writing one PASS/FAIL/SKIP line per case and then the totals to <paramref name="output"/>. Returns 1 if any case
    /// failed, else 0.</summary>
    public static int Run(string directory, Func<FixtureCase, bool>? filter, TextWriter output) =>
        Run(directory, filter, output, []);

    /// <param name="names">The --case names; each must name a case of the manifest (a typo is an error, not an empty green run).</param>
    public static int Run(string directory, Func<FixtureCase, bool>? filter, TextWriter output, IReadOnlyList<string> names)
    {
        if (names.Count > 0)
        {
            var known = FixtureManifest.Load(directory).Cases.Select(c => c.Name).ToList();
            foreach (var name in names.Where(n => !known.Contains(n)))
            {
                var nearest = known.MinBy(k => Distance(k, name));
                var hint = nearest is not null && Distance(nearest, name) <= 3 ? $"did you mean '{nearest}'? " : "";
                throw new PeftDsl.Errors.PeftDslException(
                    $"--case '{name}' matches no case in {Path.Combine(directory, "manifest.json")}; {hint}({known.Count} cases, from {known[0]} to {known[^1]})");
            }
        }
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
