using PeftDsl.Training;

namespace PeftDsl.Cli.Commands;

/// <summary><c>loss.png</c>: the training loss per logged step and the eval loss per evaluation, from metrics.jsonl.</summary>
public static class LossPlot
{
    /// <summary>Reads the run's <paramref name="metrics"/> file (metrics.jsonl) and writes the plot, 900 × 540 pixels, to
    /// <paramref name="png"/>, replacing it atomically.</summary>
    public static void Write(string metrics, string png)
    {
        var (train, eval) = MetricsLog.Read(metrics);
        var plot = new ScottPlot.Plot();
        if (train.Count > 0)
            plot.Add.Scatter(train.Select(t => (double)t.Step).ToArray(), train.Select(t => t.Loss).ToArray()).LegendText = "train loss";
        if (eval.Count > 0)
            plot.Add.Scatter(eval.Select(t => (double)t.Step).ToArray(), eval.Select(t => t.Loss).ToArray()).LegendText = "eval loss";
        plot.XLabel("step");
        plot.YLabel("loss (answer tokens)");
        plot.ShowLegend();
        var temporary = png + ".tmp";
        plot.SavePng(temporary, 900, 540);
        File.Move(temporary, png, overwrite: true);
    }
}
