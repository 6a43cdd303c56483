using System.Security.Cryptography;
using PeftDsl.Peft;
using PeftDsl.Training;
using static TorchSharp.torch;

namespace PeftDsl.Distributed;

/// <summary>A SHA-256 of a model's frozen parameters (names and bytes, in order) and of its trainable flat buffer:
/// equal on two ranks exactly when they hold the same base and the same starting adapter.</summary>
internal static class ModelChecksum
{
    public static byte[] Of(nn.Module model, FlatParameters trainable)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        using var scope = NewDisposeScope();
        foreach (var p in model.AllParameters().Where(p => !p.Parameter.requires_grad))
        {
            hash.AppendData(System.Text.Encoding.UTF8.GetBytes(p.Name));
            hash.AppendData(p.Parameter.detach().cpu().contiguous().bytes);
        }
        hash.AppendData(trainable.Values.detach().cpu().contiguous().bytes);
        return hash.GetHashAndReset();
    }
}
