using System.Globalization;

namespace PeftDsl.Cli.Parity;

public enum Outcome
{
    Pass,
    Fail,
    Skip,
}

/// <summary>One line of the parity report.</summary>
public sealed record CaseResult(string Case, Outcome Outcome, double MaxAbs, string Detail)
{
    public static CaseResult Pass(string c, double maxAbs) => new(c, Outcome.Pass, maxAbs, "");

    public static CaseResult Fail(string c, double maxAbs, string why) => new(c, Outcome.Fail, maxAbs, why);

    public static CaseResult Skip(string c, string why) => new(c, Outcome.Skip, 0, why);

    public override string ToString() => Outcome switch
    {
        Outcome.Pass => $"PASS {Case} max_abs={Format(MaxAbs)}",
        Outcome.Fail => $"FAIL {Case} max_abs={Format(MaxAbs)} {Detail}",
        _ => $"SKIP {Case} ({Detail})",
    };

    public static string Format(double x) => double.IsNaN(x) ? "nan" : x.ToString("0.00e+00", CultureInfo.InvariantCulture);
}
