using PeftDsl.Checkpoints.Safetensors;
using PeftDsl.Peft;
using PeftDsl.Peft.Prompts;
using PeftDsl.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftDsl.Cli.Parity;

/// <summary>
/// A prompt-learning case (prompt tuning, P-tuning, prefix tuning). peft saves the encoder's output, so the saved
/// adapter is loaded and its eval logits compared; then, for the gradients, the task is built from the config as
/// training builds it and filled with the reference's <c>param::</c> tensors (for P-tuning, the encoder), whose
/// output must equal the saved rows, and one training forward and backward is compared in loss and gradients.
/// </summary>
internal static class PromptCase
{
    private const string Task = "default";

    public static CaseResult Run(FixtureManifest manifest, FixtureCase c)
    {
        using var expected = SafetensorsReader.Open(manifest.ExpectedFile(c));
        var causal = c.Kind == "causal";
        using var scope = NewDisposeScope();
        var inputs = new CaseInputs(expected, causal);
        double worst;
        string? problem;

        // 1. The saved adapter, as a user loads it: eval logits.
        using (var loaded = manifest.LoadBaseModel(c))
        {
            loaded.Prompts.Load(manifest.AdapterDirectory(c), Task);
            loaded.eval();
            using var noGrad = no_grad();
            (worst, problem) = Logits(inputs, loaded, expected, "logits");
            if (problem is not null) return CaseResult.Fail(c.Name, worst, problem);
        }

        // 2. The trainable task, filled with the reference's parameters.
        using var model = manifest.LoadBaseModel(c);
        var (config, savedRows) = PromptAdapterFile.Read(manifest.AdapterDirectory(c));
        model.Prompts.Add(Task, config);
        if (Fill(model, expected) is { } fillProblem) return CaseResult.Fail(c.Name, double.NaN, fillProblem);
        if (CaseChecks.Parameters(model, expected, CaseChecks.PeftPrefix) is { } wrong) return CaseResult.Fail(c.Name, double.NaN, wrong);
        model.eval();
        using (no_grad())
        {
            // What peft saved is the encoder's output (the frozen table).
            var rowsDiff = Tolerance.MaxAbs(model.Prompts.Rows(Task), savedRows);
            worst = Math.Max(worst, rowsDiff);
            if (!(rowsDiff <= Tolerance.OutputAbs))
                return CaseResult.Fail(c.Name, worst, $"the task's rows differ from the saved prompt_embeddings beyond {Tolerance.OutputAbs}");
            var (diff, trainableProblem) = Logits(inputs, model, expected, "logits of the trainable task");
            worst = Math.Max(worst, diff);
            if (trainableProblem is not null) return CaseResult.Fail(c.Name, worst, trainableProblem);
        }

        return CaseChecks.TrainingStep(c.Name, model, inputs, expected, CaseChecks.PeftPrefix, worst);
    }

    /// <summary>Causal logits gain the virtual positions at the front; they are compared where the extended mask is 1.</summary>
    private static (double, string?) Logits(CaseInputs inputs, LanguageModel model, SafetensorsReader expected, string what)
    {
        var logits = inputs.EvalLogits(model);
        var where = inputs.RealPositions(inputs.Ids.shape[0]);
        var extra = logits.shape[1] - inputs.Ids.shape[1];
        if (where is not null && extra > 0)
            where = cat([ones(where.shape[0], extra, 1, dtype: where.dtype), where], 1);
        return CaseChecks.Logits(logits, expected.Read("logits"), where, what);
    }

    /// <summary>Copies every <c>param::prompt_encoder.*</c> tensor into the task's parameter of that name.</summary>
    private static string? Fill(LanguageModel model, SafetensorsReader expected)
    {
        const string tag = "param::";
        var ours = model.AllParameters().Where(p => p.Name.StartsWith("prompt_encoder.", StringComparison.Ordinal))
            .ToDictionary(p => p.Name, p => p.Parameter);
        var theirs = expected.Entries.Keys.Where(k => k.StartsWith(tag + "prompt_encoder.", StringComparison.Ordinal))
            .Select(k => k[tag.Length..]).ToList();
        var missing = ours.Keys.Where(k => !theirs.Contains(k)).ToList();
        if (missing.Count > 0) return "the reference has no parameter for: " + string.Join(", ", missing);
        using var noGrad = no_grad();
        foreach (var name in theirs)
        {
            if (!ours.TryGetValue(name, out var p)) return $"the reference has parameter {name}, which the task lacks";
            var value = expected.Read(tag + name);
            if (!p.shape.SequenceEqual(value.shape))
                return $"{name}: the task's shape [{string.Join(", ", p.shape)}] vs the reference's [{string.Join(", ", value.shape)}]";
            p.copy_(value);
        }
        return null;
    }
}
