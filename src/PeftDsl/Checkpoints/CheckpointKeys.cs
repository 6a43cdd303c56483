using PeftDsl.Dsl;

namespace PeftDsl.Checkpoints;

/// <summary>Builders for the checkpoint listing that generated models compute from a config alone, without
/// allocating a tensor; the shapes are in checkpoint layout.</summary>
public static class CheckpointKeys
{
    public static void Linear(List<CheckpointKey> keys, string path, long inFeatures, long outFeatures, bool bias, WeightLayout layout)
    {
        keys.Add(new(path + ".weight", layout == WeightLayout.Conv1D ? [inFeatures, outFeatures] : [outFeatures, inFeatures]));
        if (bias) keys.Add(new(path + ".bias", [outFeatures]));
    }

    public static void Norm(List<CheckpointKey> keys, string path, NormKind kind, long dim)
    {
        keys.Add(new(path + ".weight", [dim]));
        if (kind == NormKind.LayerNorm) keys.Add(new(path + ".bias", [dim]));
    }

    public static void Embedding(List<CheckpointKey> keys, string path, long count, long dim) =>
        keys.Add(new(path + ".weight", [count, dim]));
}
