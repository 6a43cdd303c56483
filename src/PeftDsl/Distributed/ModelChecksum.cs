using System.Runtime.InteropServices;
using System.Security.Cryptography;
using PeftDsl.Checkpoints;
using PeftDsl.Training;
using static TorchSharp.torch;

namespace PeftDsl.Distributed;

/// <summary>A SHA-256 of a model's base weights (<see cref="BaseChecksum"/>), of its trainable flat buffer and of the
/// tokenized training and evaluation examples: equal on two ranks exactly when they hold the same base, the same
/// starting adapter and the same data (ranks on other data would take other schedules and pair mismatched
/// collectives).</summary>
internal static class ModelChecksum
{
    public static byte[] Of(nn.Module model, FlatParameters trainable, IReadOnlyList<Data.TokenizedExample> train,
        IReadOnlyList<Data.TokenizedExample>? eval)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        BaseChecksum.AppendTo(hash, model);
        using (var values = trainable.Values.detach().cpu().contiguous()) hash.AppendData(values.bytes);
        foreach (var e in train.Concat(eval ?? []))
        {
            hash.AppendData(BitConverter.GetBytes(e.Prompt.Length));
            hash.AppendData(MemoryMarshal.AsBytes(e.Prompt.AsSpan()));
            hash.AppendData(BitConverter.GetBytes(e.Answer.Length));
            hash.AppendData(MemoryMarshal.AsBytes(e.Answer.AsSpan()));
        }
        return hash.GetHashAndReset();
    }
}
