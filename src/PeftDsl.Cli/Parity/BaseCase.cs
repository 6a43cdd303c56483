using PeftDsl.Checkpoints;
using PeftDsl.Checkpoints.Safetensors;
using PeftDsl.Errors;
using PeftDsl.Models;
using PeftDsl.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftDsl.Cli.Parity;

/// <summary>
/// A base-model case: eval-mode logits, then one training forward and backward, comparing the loss and the
/// gradient of every parameter both ways (no reference gradient may be unmatched, and no trainable parameter may
/// lack one). Causal: logits where the attention mask is 1, labels = input_ids with padding → -100. Seq2seq: the
/// decoder is fed decoder_input_ids[:, :-1] against the reference's labels.
/// </summary>
public static class BaseCase
{
    public static CaseResult RunCausal(FixtureManifest manifest, FixtureCase c)
    {
        using var expected = SafetensorsReader.Open(manifest.ExpectedFile(c));
        using var model = StockModels.LoadCausal(manifest.BaseModelDirectory(c));
        using var scope = NewDisposeScope();
        var ids = expected.Read("input_ids");
        var mask = expected.Read("attention_mask");
        return Compare(c, model, expected,
            evalLogits: () => model.Forward(ids, mask).Logits,
            realPositions: (mask != 0).unsqueeze(-1),
            trainLoss: () => model.Forward(ids, mask, ids.masked_fill(mask == 0, Losses.IgnoreIndex)).Loss!);
    }

    public static CaseResult RunSeq2Seq(FixtureManifest manifest, FixtureCase c)
    {
        using var expected = SafetensorsReader.Open(manifest.ExpectedFile(c));
        using var model = StockModels.LoadSeq2Seq(manifest.BaseModelDirectory(c));
        using var scope = NewDisposeScope();
        var ids = expected.Read("input_ids");
        var mask = expected.Read("attention_mask");
        var decoderIds = expected.Read("decoder_input_ids");
        var teacherForced = decoderIds.narrow(1, 0, decoderIds.shape[1] - 1);
        return Compare(c, model, expected,
            evalLogits: () => model.Forward(ids, mask, decoderIds).Logits,
            realPositions: null,
            trainLoss: () => model.Forward(ids, mask, teacherForced, expected.Read("labels")).Loss!);
    }

    private static CaseResult Compare(FixtureCase c, nn.Module model, SafetensorsReader expected,
        Func<Tensor> evalLogits, Tensor? realPositions, Func<Tensor> trainLoss)
    {
        model.eval();
        Tensor logits;
        using (no_grad()) logits = evalLogits();
        var reference = expected.Read("logits");
        if (!logits.shape.SequenceEqual(reference.shape))
            return CaseResult.Fail(c.Name, double.NaN, $"logits shape [{string.Join(", ", logits.shape)}] vs reference [{string.Join(", ", reference.shape)}]");
        var logitsDiff = Tolerance.MaxAbs(logits, reference, realPositions?.expand_as(logits));
        if (!(logitsDiff <= Tolerance.OutputAbs))
            return CaseResult.Fail(c.Name, logitsDiff, $"logits differ beyond {Tolerance.OutputAbs}");

        model.train();
        model.zero_grad();
        var loss = trainLoss();
        loss.backward();
        var lossDiff = Tolerance.MaxAbs(loss, expected.Read("loss").reshape([]));
        var worst = Math.Max(logitsDiff, lossDiff);
        if (!(lossDiff <= Tolerance.OutputAbs))
            return CaseResult.Fail(c.Name, worst, $"loss differs beyond {Tolerance.OutputAbs}");

        var (gradDiff, problem) = CompareGradients(model, expected);
        worst = Math.Max(worst, gradDiff);
        return problem is null ? CaseResult.Pass(c.Name, worst) : CaseResult.Fail(c.Name, worst, problem);
    }

    private static (double MaxAbs, string? Problem) CompareGradients(nn.Module model, SafetensorsReader expected)
    {
        const string prefix = "grad::";
        var ours = CheckpointLayout.Tensors(model).Where(t => t.Target.requires_grad).ToDictionary(t => t.Key);
        var theirs = expected.Entries.Keys.Where(k => k.StartsWith(prefix, StringComparison.Ordinal))
            .Select(k => k[prefix.Length..]).ToHashSet();
        var unmatched = theirs.Where(k => !ours.ContainsKey(k)).ToList();
        if (unmatched.Count > 0)
            return (double.NaN, "reference has gradients for parameters the model lacks: " + string.Join(", ", unmatched));
        var missing = ours.Keys.Where(k => !theirs.Contains(k)).ToList();
        if (missing.Count > 0)
            return (double.NaN, "no reference gradient for: " + string.Join(", ", missing));
        double worst = 0;
        foreach (var name in theirs.Order(StringComparer.Ordinal))
        {
            var t = ours[name];
            var grad = t.Target.grad ?? throw new PeftDslException($"{name}: no gradient was computed");
            if (t.Transposed) grad = grad.t();
            var reference = expected.Read(prefix + name);
            worst = Math.Max(worst, Tolerance.MaxAbs(grad, reference));
            if (!Tolerance.GradientsClose(grad, reference))
                return (worst, $"gradient of {name} differs beyond {Tolerance.GradAbs} abs / {Tolerance.GradRel} rel");
        }
        return (worst, null);
    }
}
