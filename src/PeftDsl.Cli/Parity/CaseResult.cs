using System.Globalization;

namespace PeftDsl.Cli.Parity;

/// <summary>The verdict on one parity case, printed as PASS, FAIL or SKIP.</summary>
public enum Outcome
{
    /// <summary>Every compared value is within <c>Tolerance</c> of the reference.</summary>
    Pass,
    /// <summary>A value differs beyond tolerance, or the case raised an error; <c>peft parity</c> then exits with 1.</summary>
    Fail,
    /// <summary>The case uses a model type or adapter method the project does not support yet; not counted as failing.</summary>
    Skip,
}

/// <summary>One line of the parity report.</summary>
public sealed record CaseResult(string Case, Outcome Outcome, double MaxAbs, string Detail)
{
    /// <summary>A passing case <paramref name="c"/> whose largest absolute difference was <paramref name="maxAbs"/>.</summary>
    public static CaseResult Pass(string c, double maxAbs) => new(c, Outcome.Pass, maxAbs, "");

    /// <summary>A failing case <paramref name="c"/>: largest absolute difference <paramref name="maxAbs"/> (NaN when it
    /// raised an error) and <paramref name="why"/>, what differed.</summary>
    public static CaseResult Fail(string c, double maxAbs, string why) => new(c, Outcome.Fail, maxAbs, why);

    /// <summary>A skipped case <paramref name="c"/>, with <paramref name="why"/> it is not supported.</summary>
    public static CaseResult Skip(string c, string why) => new(c, Outcome.Skip, 0, why);

    /// <summary>The report line: <c>PASS name max_abs=…</c>, <c>FAIL name max_abs=… why</c> or <c>SKIP name (why)</c>.</summary>
    public override string ToString() => Outcome switch
    {
        Outcome.Pass => $"PASS {Case} max_abs={Format(MaxAbs)}",
        Outcome.Fail => $"FAIL {Case} max_abs={Format(MaxAbs)} {Detail}",
        _ => $"SKIP {Case} ({Detail})",
    };

    /// <summary>A difference in the report's notation: three significant digits in exponent form (<c>1.23e-05</c>), or <c>nan</c>.</summary>
    public static string Format(double x) => double.IsNaN(x) ? "nan" : x.ToString("0.00e+00", CultureInfo.InvariantCulture);
}
