using PeftDsl.Runtime;
using Xunit;
using static TorchSharp.torch;

namespace PeftDsl.Tests.Training;

/// <summary>The resident high-water mark that bench reports on the CPU and train logs: it follows real allocations and
/// can be reset to the current size.</summary>
[Collection(ResidentMemory.Name)]
public sealed class ProcessMemoryTests
{
    [Fact]
    public void ThePeakFollowsAnAllocationAndResetsToTheCurrentSize()
    {
        if (!OperatingSystem.IsLinux()) return;   // /proc is Linux's; elsewhere both read null
        // Tensors other tests left to finalizers are freed now, not in the middle of the measurement.
        GC.Collect();
        GC.WaitForPendingFinalizers();
        Assert.True(ProcessMemory.ResetPeak());
        var before = ProcessMemory.PeakResidentBytes()!.Value;
        Assert.True(before >= ProcessMemory.ResidentBytes()! - (64L << 20));
        using (var big = ones(64L << 20))   // 256 MiB of fp32, written, so resident
            Assert.True(ProcessMemory.PeakResidentBytes() >= before + (200L << 20), $"peak {ProcessMemory.PeakResidentBytes()} after 256 MiB, from {before}");
        GC.Collect();
        Assert.True(ProcessMemory.ResetPeak());
        Assert.True(ProcessMemory.PeakResidentBytes() < before + (200L << 20), "the reset kept the freed tensor's peak");
    }
}
