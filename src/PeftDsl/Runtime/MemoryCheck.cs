using PeftDsl.Errors;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftDsl.Runtime;

/// <summary>Refuses, in one line and before anything is written, a model whose weights alone cannot fit in the
/// machine's memory: it would otherwise die of the out-of-memory killer partway through loading.</summary>
public static class MemoryCheck
{
    /// <summary>Throws when <paramref name="bytes"/> of weights exceed the memory this process may use (the machine's,
    /// or its container's limit). GPU memory is not checked: TorchSharp exposes no query for it.</summary>
    /// <param name="what">The run, named for the message (the command and the model).</param>
    public static void RequireFits(double bytes, string what, Device? device)
    {
        if (device is { type: DeviceType.CUDA }) return;
        var available = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
        if (bytes <= available) return;
        throw new PeftDslException($"{what}: the weights alone need about {bytes / (1L << 30):F1} GiB, but only " +
                                   $"{available / (double)(1L << 30):F1} GiB of memory is available to this process; load the projections in 4 bits (--quantize nf4) with " +
                                   "--dtype bf16, or use a machine with more memory");
    }
}
