using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;
using System.Text.RegularExpressions;

namespace PeftDsl.Cli;

/// <summary>
/// Usage mistakes in the words of the command line, not of .NET: "--r: 'abc' is not a whole number" rather than
/// "Cannot parse argument 'abc' for option '--r' as expected type 'System.Int32'", the nearest command or option
/// for a typo, and numbers read strictly ("1,5" is an error, not 15).
/// </summary>
public static partial class CommandLineErrors
{
    /// <summary>Every number option of every command reads its value with the invariant culture and no thousands
    /// separators, so a decimal comma is refused instead of read as a thousands separator.</summary>
    public static void UseStrictNumbers(Command command)
    {
        foreach (var option in command.Options)
        {
            if (option is Option<double> d) d.CustomParser = r => Number(r, option.Name) ?? 0;
            else if (option is Option<double?> n) n.CustomParser = r => Number(r, option.Name);
        }
        foreach (var sub in command.Subcommands) UseStrictNumbers(sub);
    }

    private static double? Number(ArgumentResult result, string option)
    {
        var text = result.Tokens.Count == 1 ? result.Tokens[0].Value : string.Join(" ", result.Tokens.Select(t => t.Value));
        if (double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var value) && double.IsFinite(value)) return value;
        result.AddError($"{option}: '{text}' is not a number (write decimals with a point: 0.5, 2e-4)");
        return null;
    }

    /// <summary>One line for all of a parse's errors.</summary>
    public static string Describe(ParseResult parse)
    {
        var command = parse.CommandResult.Command;
        var required = new List<string>();
        var messages = new List<string>();
        foreach (var error in parse.Errors)
        {
            var message = error.Message.TrimEnd('.');
            if (RequiredOption().Match(message) is { Success: true } r) required.Add(r.Groups[1].Value);
            else if (message == "Required command was not provided") { }
            else if (Unrecognized().Match(message) is { Success: true } u) messages.Add(Unknown(command, u.Groups[1].Value));
            else if (CannotParse().Match(message) is { Success: true } p)
                messages.Add($"{p.Groups[2].Value}: '{p.Groups[1].Value}' is not {Kind(p.Groups[3].Value)}");
            else messages.Add(message);
        }
        if (required.Count > 0)
            messages.Insert(0, required.Count == 1 ? $"{required[0]} is required" : $"{string.Join(", ", required[..^1])} and {required[^1]} are required");
        if (messages.Count == 0) messages.Add(command.Parents.Any() ? "incomplete command" : "a command is required: " + string.Join(", ", command.Subcommands.Select(c => c.Name)));
        return string.Join("; ", messages.Distinct());
    }

    private static string Unknown(Command command, string token)
    {
        var isOption = token.StartsWith('-');
        var names = isOption
            ? command.Options.Select(o => o.Name).Concat(command.Parents.OfType<Command>().SelectMany(p => p.Options.Where(o => o.Recursive).Select(o => o.Name)))
            : command.Subcommands.Select(c => c.Name);
        var nearest = names.Select(n => (Name: n, Distance: Distance(token, n))).OrderBy(x => x.Distance).FirstOrDefault();
        var what = isOption ? "unknown option" : command.Subcommands.Any() ? "unknown command" : "unexpected argument";
        var hint = nearest.Name is not null && nearest.Distance <= Math.Max(2, nearest.Name.Length / 3) ? $" (did you mean {nearest.Name}?)" : "";
        return $"{what} '{token}'{hint}";
    }

    private static string Kind(string type) => type switch
    {
        _ when type.Contains("Int") => "a whole number",
        _ when type.Contains("Double") || type.Contains("Single") => "a number",
        _ when type.Contains("Boolean") => "true or false",
        _ => "a valid value",
    };

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
                var next = Math.Min(Math.Min(row[j] + 1, row[j - 1] + 1), previous + (a[i - 1] == b[j - 1] ? 0 : 1));
                previous = row[j];
                row[j] = next;
            }
        }
        return row[b.Length];
    }

    [GeneratedRegex("^Option '(.+)' is required$")]
    private static partial Regex RequiredOption();

    [GeneratedRegex("^Unrecognized command or argument '(.*)'$")]
    private static partial Regex Unrecognized();

    [GeneratedRegex("^Cannot parse argument '(.*)' for option '(.+)' as expected type '(.+)'$")]
    private static partial Regex CannotParse();
}
