using PeftDsl.Checkpoints;
using PeftDsl.Checkpoints.Safetensors;
using PeftDsl.Errors;
using PeftDsl.Peft;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftDsl.Cli.Parity;

/// <summary>The comparisons every case makes, each returning the worst difference and a problem or null.</summary>
internal static class CaseChecks
{
    /// <summary>peft's in-memory names carry this wrapper prefix; a base model's do not.</summary>
    public const string PeftPrefix = "base_model.model.";

    /// <summary>peft's in-memory name of one of our parameters: the base model and LoRA sit under the wrapper prefix,
    /// prompt learning's <c>prompt_encoder</c> beside it.</summary>
    public static string ReferenceName(string prefix, string name) =>
        name.StartsWith("prompt_encoder.", StringComparison.Ordinal) ? name : prefix + InMemoryName(name);

    /// <summary>transformers 5 keeps a few modules under other names in memory than in the checkpoint (which is what
    /// our modules are named after): GPT-NeoX's head is saved as <c>embed_out</c> and held as <c>lm_head</c>.</summary>
    private static readonly (string Checkpoint, string InMemory)[] InMemoryRenames = [("embed_out.", "lm_head.")];

    private static string InMemoryName(string name)
    {
        foreach (var (checkpoint, inMemory) in InMemoryRenames)
            if (name.StartsWith(checkpoint, StringComparison.Ordinal)) return inMemory + name[checkpoint.Length..];
        return name;
    }

    public static (double MaxAbs, string? Problem) Logits(Tensor actual, Tensor reference, Tensor? where, string what)
    {
        if (!actual.shape.SequenceEqual(reference.shape))
            return (double.NaN, $"{what} shape [{string.Join(", ", actual.shape)}] vs reference [{string.Join(", ", reference.shape)}]");
        var diff = Tolerance.MaxAbs(actual, reference, where?.expand_as(actual));
        return diff <= Tolerance.OutputAbs ? (diff, null) : (diff, $"{what} differ beyond {Tolerance.OutputAbs}");
    }

    /// <summary>Every <c>param::</c> tensor of the reference equals the loaded parameter of the same name: proof that the
    /// adapter file's keys were mapped onto the right modules.</summary>
    public static string? Parameters(nn.Module model, SafetensorsReader expected, string prefix)
    {
        const string tag = "param::";
        var ours = model.AllParameters().ToDictionary(p => ReferenceName(prefix, p.Name), p => p.Parameter);
        foreach (var key in expected.Entries.Keys.Where(k => k.StartsWith(tag, StringComparison.Ordinal)).Order(StringComparer.Ordinal))
        {
            var name = key[tag.Length..];
            if (!ours.TryGetValue(name, out var p)) return $"the reference has parameter {name}, which the loaded model lacks";
            using var scope = NewDisposeScope();
            var reference = expected.Read(key);
            if (!p.shape.SequenceEqual(reference.shape) || Tolerance.MaxAbs(p.detach(), reference) > 0)
                return $"loaded parameter {name} differs from the reference's";
        }
        return null;
    }

    /// <summary>One training forward and backward against the reference's loss and gradients; returns the case's
    /// result with <paramref name="worst"/> (the earlier checks' largest difference) folded in.</summary>
    public static CaseResult TrainingStep(string name, Runtime.LanguageModel model, CaseInputs inputs, SafetensorsReader expected,
        string prefix, double worst)
    {
        model.train();
        model.zero_grad();
        var loss = inputs.TrainLoss(model);
        loss.backward();
        var lossDiff = Tolerance.MaxAbs(loss, expected.Read("loss").reshape([]));
        worst = Math.Max(worst, lossDiff);
        if (!(lossDiff <= Tolerance.OutputAbs))
            return CaseResult.Fail(name, worst, $"loss differs beyond {Tolerance.OutputAbs}");
        var (gradDiff, gradProblem) = Gradients(model, expected, prefix);
        worst = Math.Max(worst, gradDiff);
        return gradProblem is null ? CaseResult.Pass(name, worst) : CaseResult.Fail(name, worst, gradProblem);
    }

    /// <summary>Gradients both ways: no reference gradient may be unmatched and no trainable parameter may lack one.</summary>
    public static (double MaxAbs, string? Problem) Gradients(nn.Module model, SafetensorsReader expected, string prefix)
    {
        const string tag = "grad::";
        var transposed = CheckpointLayout.Tensors(model).Where(t => t.Transposed).Select(t => t.Key).ToHashSet();
        var ours = model.TrainableParameters().ToDictionary(p => ReferenceName(prefix, p.Name));
        var theirs = expected.Entries.Keys.Where(k => k.StartsWith(tag, StringComparison.Ordinal))
            .Select(k => k[tag.Length..]).ToHashSet();
        var unmatched = theirs.Where(k => !ours.ContainsKey(k)).ToList();
        if (unmatched.Count > 0)
            return (double.NaN, "reference has gradients for parameters the model lacks or keeps frozen: " + string.Join(", ", unmatched));
        var missing = ours.Keys.Where(k => !theirs.Contains(k)).ToList();
        if (missing.Count > 0)
            return (double.NaN, "no reference gradient for: " + string.Join(", ", missing));
        double worst = 0;
        foreach (var name in theirs.Order(StringComparer.Ordinal))
        {
            var p = ours[name];
            var grad = p.Parameter.grad ?? throw new PeftDslException($"{name}: no gradient was computed");
            if (transposed.Contains(p.Name)) grad = grad.t();
            var reference = expected.Read(tag + name);
            worst = Math.Max(worst, Tolerance.MaxAbs(grad, reference));
            if (!Tolerance.GradientsClose(grad, reference))
                return (worst, $"gradient of {name} differs beyond {Tolerance.GradAbs} abs / {Tolerance.GradRel} rel");
        }
        return (worst, null);
    }
}
