using PeftDsl.Checkpoints.Safetensors;
using PeftDsl.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftDsl.Cli.Parity;

/// <summary>
/// Several named adapters (each in its subfolder): the mixed batch, one adapter per row as the manifest lists them
/// (<c>mixed_logits</c>), and the plain batch with each adapter active (<c>logits_{name}</c>, over its first rows).
/// </summary>
internal static class MultiAdapterCase
{
    public static CaseResult Run(FixtureManifest manifest, FixtureCase c)
    {
        using var expected = SafetensorsReader.Open(manifest.ExpectedFile(c));
        var causal = c.Kind == "causal";
        using var model = manifest.LoadBaseModel(c);
        foreach (var name in c.Adapters) model.Adapters.Load(Path.Combine(manifest.AdapterDirectory(c), name), name);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var inputs = new CaseInputs(expected, causal);
        model.eval();
        double worst = 0;
        var compared = 0;
        if (c.MixedBatchAdapters is { } rows && expected.Entries.ContainsKey("mixed_logits"))
        {
            var (diff, problem) = CaseChecks.Logits(inputs.EvalLogits(model, rows), expected.Read("mixed_logits"),
                inputs.RealPositions(inputs.Ids.shape[0]), "mixed-batch logits");
            if (problem is not null) return CaseResult.Fail(c.Name, diff, problem);
            worst = diff;
            compared++;
        }
        foreach (var name in c.Adapters)
        {
            if (!expected.Entries.ContainsKey("logits_" + name)) continue;
            var reference = expected.Read("logits_" + name);
            model.Adapters.SetActive(name);
            var (diff, problem) = CaseChecks.Logits(inputs.EvalLogits(model, rows: reference.shape[0]), reference,
                inputs.RealPositions(reference.shape[0]), $"logits with adapter '{name}'");
            if (problem is not null) return CaseResult.Fail(c.Name, diff, problem);
            worst = Math.Max(worst, diff);
            compared++;
        }
        return compared == 0
            ? CaseResult.Fail(c.Name, double.NaN, "the expected file has neither mixed_logits nor logits_<adapter>: nothing was checked")
            : CaseResult.Pass(c.Name, worst);
    }
}
