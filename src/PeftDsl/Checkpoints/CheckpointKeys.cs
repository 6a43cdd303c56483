using PeftDsl.Dsl;

namespace PeftDsl.Checkpoints;

/// <summary>Builders for the checkpoint listing that generated models compute from a config alone, without
/// allocating a tensor; the shapes are in checkpoint layout.</summary>
public static class CheckpointKeys
{
    /// <summary>Appends a projection's <c>{path}.weight</c> ([out, in], or [in, out] for GPT-2's <c>Conv1D</c>) and,
    /// with <paramref name="bias"/>, <c>{path}.bias</c> [out].</summary>
    public static void Linear(List<CheckpointKey> keys, string path, long inFeatures, long outFeatures, bool bias, WeightLayout layout)
    {
        keys.Add(new(path + ".weight", layout == WeightLayout.Conv1D ? [inFeatures, outFeatures] : [outFeatures, inFeatures]));
        if (bias) keys.Add(new(path + ".bias", [outFeatures]));
    }

    /// <summary>Appends a norm's <c>{path}.weight</c> [dim] and, for <c>NormKind.LayerNorm</c>, <c>{path}.bias</c> [dim]
    /// (RMSNorm has no bias).</summary>
    public static void Norm(List<CheckpointKey> keys, string path, NormKind kind, long dim)
    {
        keys.Add(new(path + ".weight", [dim]));
        if (kind == NormKind.LayerNorm) keys.Add(new(path + ".bias", [dim]));
    }

    /// <summary>Appends an embedding table's <c>{path}.weight</c> [count, dim] (tokens: [vocab, hidden]; learned positions: [max positions, hidden]).</summary>
    public static void Embedding(List<CheckpointKey> keys, string path, long count, long dim) =>
        keys.Add(new(path + ".weight", [count, dim]));
}
