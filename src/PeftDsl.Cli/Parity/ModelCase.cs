using PeftDsl.Checkpoints.Safetensors;
using PeftDsl.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftDsl.Cli.Parity;

/// <summary>
/// A base-model or single-adapter case: the loaded adapter equals the reference's parameters, eval-mode logits
/// match, merged logits match (LoRA cases that have them), then one training forward and backward matches in loss and
/// in the gradient of every trainable parameter, both ways.
/// </summary>
internal static class ModelCase
{
    public static CaseResult Run(FixtureManifest manifest, FixtureCase c)
    {
        using var expected = SafetensorsReader.Open(manifest.ExpectedFile(c));
        var causal = c.Kind == "causal";
        using var model = manifest.LoadBaseModel(c);
        var prefix = "";
        if (c.AdapterDir is not null)
        {
            if (manifest.PeftTypes(c).SequenceEqual([Peft.Ia3.Ia3ConfigJson.PeftType])) model.Ia3.Load(manifest.AdapterDirectory(c), trainable: true);
            else model.Adapters.Load(manifest.AdapterDirectory(c), trainable: true);
            prefix = CaseChecks.PeftPrefix;
            if (CaseChecks.Parameters(model, expected, prefix) is { } wrong) return CaseResult.Fail(c.Name, double.NaN, wrong);
        }
        using var scope = NewDisposeScope();
        var inputs = new CaseInputs(expected, causal);

        model.eval();
        double worst;
        string? problem;
        using (no_grad())
        {
            (worst, problem) = CaseChecks.Logits(inputs.EvalLogits(model), expected.Read("logits"), inputs.RealPositions(inputs.Ids.shape[0]), "logits");
            if (problem is null && File.Exists(manifest.MergedFile(c)))
            {
                using var merged = SafetensorsReader.Open(manifest.MergedFile(c));
                model.Adapters.Merge();
                var (diff, mergedProblem) = CaseChecks.Logits(inputs.EvalLogits(model), merged.Read("merged_logits"),
                    inputs.RealPositions(inputs.Ids.shape[0]), "merged logits");
                model.Adapters.Unmerge();
                (worst, problem) = (Math.Max(worst, diff), mergedProblem);
            }
        }
        if (problem is not null) return CaseResult.Fail(c.Name, worst, problem);

        return CaseChecks.TrainingStep(c.Name, model, inputs, expected, prefix, worst);
    }
}
