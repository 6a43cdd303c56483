using TorchSharp;
using static TorchSharp.torch;

namespace PeftDsl.Checkpoints;

/// <summary>Writes a model's weights in Hugging Face checkpoint layout (Conv1D weights transposed back).</summary>
public static class CheckpointWriter
{
    /// <summary>Writes atomically (a temporary file renamed into place). An existing file is replaced only when
    /// <paramref name="overwrite"/> says so; a folder is never a weights file.</summary>
    public static void SaveWeights(nn.Module model, string path, bool overwrite = false)
    {
        if (Directory.Exists(path))
            throw new Errors.CheckpointException($"{path}: is a folder; give the path of the .safetensors file to write (for example {Path.Combine(path, "model.safetensors")})");
        if (File.Exists(path) && !overwrite)
            throw new Errors.CheckpointException($"{path}: already exists; pass overwrite: true to replace it");
        var parent = Path.GetDirectoryName(Path.GetFullPath(path));
        if (parent is not null && !Directory.Exists(parent))
            throw new Errors.CheckpointException($"{path}: the folder {parent} does not exist");
        foreach (var linear in model.modules().OfType<Modules.PeftLinear>()) linear.RequireFullPrecision("saving the base weights");
        using var scope = NewDisposeScope();
        var tensors = CheckpointLayout.Tensors(model)
            .ToDictionary(t => t.Key, t => t.Transposed ? t.Target.detach().t() : t.Target.detach());
        Safetensors.SafetensorsWriter.Save(path, tensors, new Dictionary<string, string> { ["format"] = "pt" });
    }
}
