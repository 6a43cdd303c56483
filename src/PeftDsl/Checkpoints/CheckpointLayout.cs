using PeftDsl.Modules;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftDsl.Checkpoints;

/// <summary>A state-dict key and its shape as the checkpoint stores it.</summary>
public sealed record CheckpointKey(string Key, long[] Shape)
{
    /// <summary>Equal keys have equal shapes element by element (a record alone would compare the arrays by reference).</summary>
    public bool Equals(CheckpointKey? other) => other is not null && Key == other.Key && Shape.SequenceEqual(other.Shape);

    /// <summary>Hashes the key and every shape element, consistent with the element-wise <c>Equals</c>.</summary>
    public override int GetHashCode() => Shape.Aggregate(Key.GetHashCode(), HashCode.Combine);

    /// <summary>The listing form <c>key [d0, d1, …]</c>, e.g. <c>transformer.h.0.attn.c_attn.weight [768, 2304]</c>.</summary>
    public override string ToString() => $"{Key} [{string.Join(", ", Shape)}]";
}

/// <summary>A model tensor bound to its checkpoint key.</summary>
/// <param name="Transposed">The checkpoint holds the transpose (GPT-2 Conv1D).</param>
public sealed record CheckpointTensor(string Key, Tensor Target, long[] CheckpointShape, bool Transposed);

/// <summary>Maps a built module to checkpoint keys. Registration names are the Hugging Face names, so the only
/// translation is the per-module layout (transposes). Only base tensors are listed: PEFT modules
/// (<see cref="Peft.IPeftTensors"/>) and everything under them belong to adapter files.</summary>
public static class CheckpointLayout
{
    /// <summary>Every base parameter and persistent buffer of <paramref name="model"/> bound to its checkpoint key, with
    /// its shape as the checkpoint stores it (transposed for a Conv1D weight). PEFT modules and their subtrees are left out.</summary>
    public static IReadOnlyList<CheckpointTensor> Tensors(nn.Module model)
    {
        var result = new List<CheckpointTensor>();
        foreach (var (path, module) in BaseModules(model))
        {
            foreach (var (name, p) in module.named_parameters(recurse: false))
                result.Add(Bind(path, name, module, p));
            foreach (var (name, b) in module.named_buffers(recurse: false, include_nonpersistent: false))
                result.Add(Bind(path, name, module, b));
        }
        return result;
    }

    /// <summary>The sorted <c>key [shape]</c> listing of a built model, in checkpoint layout.</summary>
    public static string Describe(nn.Module model) =>
        Describe(Tensors(model).Select(t => new CheckpointKey(t.Key, t.CheckpointShape)));

    /// <summary>The listing of <paramref name="keys"/>: one <c>key [shape]</c> per line, sorted by key (ordinal), ending
    /// with a newline, so two listings can be compared as text.</summary>
    public static string Describe(IEnumerable<CheckpointKey> keys) =>
        string.Join("\n", keys.OrderBy(k => k.Key, StringComparer.Ordinal).Select(k => k.ToString())) + "\n";

    /// <summary>Every module with its dotted path, the root first with path "".</summary>
    public static IEnumerable<(string Path, nn.Module Module)> ModulesWithRoot(nn.Module model)
    {
        yield return ("", model);
        foreach (var (path, module) in model.named_modules())
            if (path.Length > 0) yield return (path, module);
    }

    /// <summary><see cref="ModulesWithRoot"/> without PEFT modules and their subtrees.</summary>
    public static IEnumerable<(string Path, nn.Module Module)> BaseModules(nn.Module model)
    {
        var all = ModulesWithRoot(model).ToList();
        var peft = all.Where(m => m.Module is Peft.IPeftTensors).Select(m => m.Path).ToHashSet(StringComparer.Ordinal);
        return peft.Count == 0 ? all : all.Where(m => !UnderAny(m.Path, peft));
    }

    /// <summary>True when <paramref name="path"/> or one of its ancestors is in <paramref name="roots"/>.</summary>
    private static bool UnderAny(string path, HashSet<string> roots)
    {
        if (roots.Contains(path)) return true;
        for (var dot = path.IndexOf('.'); dot >= 0; dot = path.IndexOf('.', dot + 1))
            if (roots.Contains(path[..dot])) return true;
        return false;
    }

    /// <summary>Checkpoint layout of one base parameter by its model key (null if <paramref name="key"/> is not a
    /// base tensor).</summary>
    public static CheckpointTensor? Find(nn.Module model, string key) => Tensors(model).FirstOrDefault(t => t.Key == key);

    private static CheckpointTensor Bind(string path, string name, nn.Module owner, Tensor t)
    {
        var key = ModulePath.Join(path, name);
        var transposed = owner is ICheckpointLayout layout && layout.IsTransposedInCheckpoint(name);
        var shape = transposed ? t.shape.Reverse().ToArray() : t.shape;
        return new CheckpointTensor(key, t, shape, transposed);
    }
}
