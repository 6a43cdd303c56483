using System.Globalization;
using PeftDsl.Training;
using Spectre.Console;

namespace PeftDsl.Cli.Commands;

/// <summary>A live progress bar (step, loss, learning rate, tokens/s, ETA) on a terminal; plain periodic lines when the
/// output is a file or a pipe.</summary>
public static class TrainingProgress
{
    /// <summary>Runs <paramref name="run"/> while showing the trainer's progress: a live bar when <paramref name="log"/> is
    /// the console on a terminal, otherwise one <see cref="Line"/> per event written to <paramref name="log"/>. Returns the
    /// run's result.</summary>
    public static TrainingResult Show(Trainer trainer, TextWriter log, Func<TrainingResult> run)
    {
        if (log != Console.Out || Console.IsOutputRedirected)
        {
            trainer.Progress += e => log.WriteLine(Line(e));
            return run();
        }
        TrainingResult? result = null;
        AnsiConsole.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn(), new SpinnerColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask("training", maxValue: trainer.TotalSteps);
                trainer.Progress += e =>
                {
                    if (e is StepEvent s)
                    {
                        task.Value = s.Step;
                        task.Description = Markup.Escape(Line(s));
                    }
                    else if (e is EvalEvent) AnsiConsole.WriteLine(Line(e));
                };
                result = run();
                task.StopTask();
            });
        return result!;
    }

    /// <summary>The log line for a training event: a step's loss, learning rate and tokens/s, an evaluation's loss,
    /// perplexity and exact match, or a checkpoint's path.</summary>
    public static string Line(TrainingEvent e) => e switch
    {
        StepEvent s => string.Create(CultureInfo.InvariantCulture,
            $"step {s.Step}/{s.TotalSteps}  loss {s.Loss:F4}  lr {s.LearningRate:0.###e+00}  {s.TokensPerSecond:N0} tokens/s"),
        EvalEvent v => string.Create(CultureInfo.InvariantCulture,
            $"eval at step {v.Step}: loss {v.Result.Loss:F4}  perplexity {v.Result.Perplexity:F2}  exact match {v.Result.ExactMatch:P1}{(v.Best ? "  (best)" : "")}"),
        SaveEvent c => $"checkpoint at step {c.Step}: {c.Path}",
        _ => e.ToString(),
    };
}
