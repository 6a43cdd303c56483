using TorchSharp;
using static TorchSharp.torch;

namespace PeftDsl.Checkpoints;

/// <summary>Writes a model's weights in Hugging Face checkpoint layout (Conv1D weights transposed back).</summary>
public static class CheckpointWriter
{
    public static void SaveWeights(nn.Module model, string path)
    {
        using var scope = NewDisposeScope();
        var tensors = CheckpointLayout.Tensors(model)
            .ToDictionary(t => t.Key, t => t.Transposed ? t.Target.detach().t() : t.Target.detach());
        Safetensors.SafetensorsWriter.Save(path, tensors, new Dictionary<string, string> { ["format"] = "pt" });
    }
}
