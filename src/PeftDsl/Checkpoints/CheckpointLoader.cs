using System.Text;
using System.Text.RegularExpressions;
using PeftDsl.Errors;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftDsl.Checkpoints;

/// <summary>How a model family's checkpoints may differ from its parameter list.</summary>
/// <param name="TiedKeys">Keys that may be present but are not parameters (a tied LM head's weight).</param>
/// <param name="IgnorePatterns">Regexes of stale keys to skip (old buffers such as GPT-2's <c>attn.bias</c>).</param>
/// <param name="BasePrefix">The body's name (<c>transformer</c>): checkpoints saved from the bare body lack it.</param>
public sealed record CheckpointRules(IReadOnlyList<string> TiedKeys, IReadOnlyList<string> IgnorePatterns, string? BasePrefix)
{
    /// <summary>No tied keys, no ignored keys, no body prefix: the file must hold exactly the model's parameters.</summary>
    public static readonly CheckpointRules Strict = new([], [], null);
}

/// <summary>Strict loading: every parameter must be in the file with its shape, and nothing else may be.</summary>
public static class CheckpointLoader
{
    private const int ListedPerKind = 20;

    /// <summary>Copies the checkpoint into <paramref name="model"/>'s base tensors, converting to each tensor's dtype
    /// and device and transposing Conv1D weights. Nothing is copied unless every key and shape matches first.</summary>
    /// <param name="model">The built model; its PEFT modules are ignored.</param>
    /// <param name="folder">The opened checkpoint.</param>
    /// <param name="rules">The family's tolerated differences (tied keys, stale buffers, a missing body prefix).</param>
    /// <exception cref="CheckpointMismatchException">Keys are missing or unexpected, a shape differs, or a float weight is
    /// stored as integers; the message lists them.</exception>
    /// <param name="loaded">Called after each tensor is copied in (4-bit loading quantizes it there and frees it).</param>
    public static void Load(nn.Module model, CheckpointFolder folder, CheckpointRules rules, Action<CheckpointTensor>? loaded = null)
    {
        var tensors = CheckpointLayout.Tensors(model);
        var fileKeys = folder.Keys.ToHashSet(StringComparer.Ordinal);
        var resolve = KeyResolver(tensors, fileKeys, rules.BasePrefix);
        var ignore = rules.IgnorePatterns.Select(p => new Regex(p, RegexOptions.CultureInvariant)).ToList();

        var missing = new List<string>();
        var wrongShape = new List<string>();
        var used = new HashSet<string>(StringComparer.Ordinal);
        foreach (var t in tensors)
        {
            var fileKey = resolve(t.Key);
            if (!fileKeys.Contains(fileKey))
            {
                missing.Add(t.Key);
                continue;
            }
            used.Add(fileKey);
            var entry = folder.Entry(fileKey);
            if (!entry.Shape.SequenceEqual(t.CheckpointShape))
                wrongShape.Add($"{fileKey}: checkpoint {entry.ShapeText}, model expects [{string.Join(", ", t.CheckpointShape)}]");
            // Integers or booleans are never a float weight's values: converting them would load garbage silently.
            else if (IsFloat(t.Target.dtype) && !IsFloat(entry.DType))
                wrongShape.Add($"{fileKey}: stored as {entry.DType}, but the model's weight is floating point; not converted");
        }
        foreach (var tied in rules.TiedKeys)
        {
            var fileKey = resolve(tied);
            if (fileKeys.Contains(fileKey)) used.Add(fileKey);
        }
        var unexpected = fileKeys.Where(k => !used.Contains(k) && !ignore.Any(r => r.IsMatch(k)))
            .OrderBy(k => k, StringComparer.Ordinal).ToList();
        if (missing.Count + unexpected.Count + wrongShape.Count > 0)
            throw Mismatch(folder.Directory, missing, unexpected, wrongShape);

        using var noGrad = no_grad();
        foreach (var t in tensors)
        {
            using var scope = NewDisposeScope();
            var source = folder.Read(resolve(t.Key));
            if (t.Transposed) source = source.t();
            t.Target.copy_(source.to(t.Target.dtype, t.Target.device));
            loaded?.Invoke(t);
        }
    }

    private static bool IsFloat(ScalarType t) => t is ScalarType.Float16 or ScalarType.BFloat16 or ScalarType.Float32 or ScalarType.Float64;

    /// <summary>Model key → file key. A checkpoint saved from the bare body (the hub's <c>gpt2</c>) has keys
    /// without the body prefix; it is accepted only when no key in the file carries the prefix.</summary>
    private static Func<string, string> KeyResolver(IReadOnlyList<CheckpointTensor> tensors, HashSet<string> fileKeys, string? prefix)
    {
        if (prefix is null) return k => k;
        var dotted = prefix + ".";
        var fileHasPrefix = fileKeys.Any(k => k.StartsWith(dotted, StringComparison.Ordinal));
        var modelHasPrefix = tensors.Any(t => t.Key.StartsWith(dotted, StringComparison.Ordinal));
        if (fileHasPrefix || !modelHasPrefix) return k => k;
        return k => k.StartsWith(dotted, StringComparison.Ordinal) ? k[dotted.Length..] : k;
    }

    internal static CheckpointMismatchException Mismatch(string directory, List<string> missing, List<string> unexpected, List<string> wrongShape, string why = "")
    {
        var text = new StringBuilder($"{directory}: checkpoint does not match the model{why}");
        Append(text, "missing keys", missing);
        Append(text, "unexpected keys", unexpected);
        Append(text, "wrong shapes", wrongShape);
        return new CheckpointMismatchException(text.ToString(), missing, unexpected, wrongShape);
    }

    private static void Append(StringBuilder text, string title, List<string> items)
    {
        if (items.Count == 0) return;
        text.Append($"\n  {title} ({items.Count}):");
        foreach (var item in items.Take(ListedPerKind)) text.Append("\n    ").Append(item);
        if (items.Count > ListedPerKind) text.Append($"\n    … and {items.Count - ListedPerKind} more");
    }
}
