using System.Globalization;
using System.Text.Json;

namespace PeftDsl.Training;

/// <summary>
/// <c>metrics.jsonl</c>: one line per logged step (<c>step</c>, <c>loss</c>, <c>lr</c>, <c>tokens_per_s</c>, …) and one
/// per evaluation (<c>eval_loss</c>, <c>eval_perplexity</c>, <c>eval_exact_match</c>), flushed as they happen. A resumed
/// run first drops the lines past its checkpoint, so the file tells one consistent history.
/// </summary>
public sealed class MetricsLog : IDisposable
{
    private readonly StreamWriter writer;

    /// <summary>Opens the log for appending, keeping only the lines up to <paramref name="resumedAtStep"/>.</summary>
    /// <param name="path">The <c>metrics.jsonl</c> file.</param>
    /// <param name="resumedAtStep">The checkpoint's step when resuming; 0 starts the file afresh.</param>
    public MetricsLog(string path, int resumedAtStep = 0)
    {
        Path = path;
        var kept = resumedAtStep > 0 && File.Exists(path)
            ? File.ReadAllLines(path).Where(l => StepOf(l) is { } s && s <= resumedAtStep).ToList()
            : [];
        File.WriteAllLines(path, kept);
        writer = new StreamWriter(path, append: true) { AutoFlush = true };
    }

    /// <summary>The <c>metrics.jsonl</c> file being written.</summary>
    public string Path { get; }

    /// <summary>Adds <c>peak_rss_bytes</c>, the process's resident high-water mark so far (host memory; a GPU's is not
    /// included), where the system reports it.</summary>
    private static Dictionary<string, object> WithPeak(Dictionary<string, object> line, long? peak)
    {
        if (peak is { } bytes) line["peak_rss_bytes"] = bytes;
        return line;
    }

    /// <summary>Appends the event's JSON line, flushed at once; only step and evaluation events are logged.</summary>
    public void Write(TrainingEvent e)
    {
        var line = e switch
        {
            StepEvent s => WithPeak(new Dictionary<string, object> { ["step"] = s.Step, ["epoch"] = s.Epoch, ["loss"] = Round(s.Loss), ["lr"] = s.LearningRate, ["tokens_per_s"] = Math.Round(s.TokensPerSecond, 1), ["grad_norm"] = Round(s.GradNorm) }, s.PeakResidentBytes),
            EvalEvent v => new Dictionary<string, object> { ["step"] = v.Step, ["eval_loss"] = Round(v.Result.Loss), ["eval_perplexity"] = Round(v.Result.Perplexity), ["eval_exact_match"] = Round(v.Result.ExactMatch), ["best"] = v.Best },
            _ => null,
        };
        if (line is not null) writer.WriteLine(JsonSerializer.Serialize(line));
    }

    /// <summary>(step, loss) of the training lines and (step, eval loss) of the evaluation lines.</summary>
    public static (List<(int Step, double Loss)> Train, List<(int Step, double Loss)> Eval) Read(string path)
    {
        var train = new List<(int, double)>();
        var eval = new List<(int, double)>();
        foreach (var line in File.ReadLines(path))
        {
            using var doc = JsonDocument.Parse(line);
            var root = doc.RootElement;
            var step = root.GetProperty("step").GetInt32();
            if (root.TryGetProperty("loss", out var loss)) train.Add((step, loss.GetDouble()));
            if (root.TryGetProperty("eval_loss", out var evalLoss) && evalLoss.ValueKind == JsonValueKind.Number) eval.Add((step, evalLoss.GetDouble()));
        }
        return (train, eval);
    }

    /// <summary>Closes the file.</summary>
    public void Dispose() => writer.Dispose();

    private static int? StepOf(string line)
    {
        try
        {
            using var doc = JsonDocument.Parse(line);
            return doc.RootElement.TryGetProperty("step", out var s) ? s.GetInt32() : null;
        }
        catch (JsonException)
        {
            return null;   // a line cut by a kill is dropped
        }
    }

    private static object Round(double x) => double.IsFinite(x) ? Math.Round(x, 6) : x.ToString(CultureInfo.InvariantCulture);
}
