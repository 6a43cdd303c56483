using System.Security.Cryptography;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftDsl.Checkpoints;

/// <summary>A SHA-256 of a model's base weights: every checkpoint tensor's bytes, in key order. Equal exactly when two
/// models hold the same base (adapters are not checkpoint tensors), so it shows that training left the base untouched
/// and that the ranks of a job start from one base.</summary>
public static class BaseChecksum
{
    /// <summary>Adds the base weights to <paramref name="hash"/>.</summary>
    public static void AppendTo(IncrementalHash hash, nn.Module model)
    {
        foreach (var t in CheckpointLayout.Tensors(model).OrderBy(t => t.Key, StringComparer.Ordinal))
        {
            // One tensor at a time: a GPU model's host copies are freed one by one, not held to the end.
            using var cpu = t.Target.detach().cpu().contiguous();
            hash.AppendData(cpu.bytes);
        }
        // A 4-bit weight's bytes are its packed codes and quantization state (its full-precision tensor is empty).
        foreach (var linear in model.modules().OfType<Modules.PeftLinear>())
            if (linear.FourBit is { } q)
                foreach (var part in new[] { q.Packed, q.Absmax, q.Code, q.NestedAbsmax, q.NestedCode })
                    if (part is not null)
                    {
                        using var cpu = part.cpu().contiguous();
                        hash.AppendData(cpu.bytes);
                    }
    }

    /// <summary>The first 16 hex digits of the checksum, for a log line.</summary>
    public static string ShortHex(nn.Module model)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        AppendTo(hash, model);
        return Convert.ToHexString(hash.GetHashAndReset())[..16].ToLowerInvariant();
    }
}
