using PeftDsl.Runtime;
using Xunit;

namespace PeftDsl.Tests;

/// <summary>The native-runtime check: here libtorch loads; its two failures are explained in one line each. (A
/// project without libtorch is run for real by scripts/package-check.)</summary>
public sealed class TorchRuntimeTests
{
    [Fact]
    public void LibtorchLoadsHere() => Assert.True(TorchRuntime.Ensure());

    [Fact]
    public void ATooOldCppRuntimeNamesTheSymbolVersionAndTheFix()
    {
        var dlerror = "Unable to load shared library 'torch_cpu' or one of its dependencies. /app/libtorch_cpu.so: " +
                      "/lib/x86_64-linux-gnu/libstdc++.so.6: version `GLIBCXX_3.4.32' not found (required by /app/libtorch_cpu.so)";
        var message = TorchRuntime.Explain("torch_cpu", dlerror);
        Assert.DoesNotContain('\n', message);
        Assert.Contains("torch_cpu needs GLIBCXX_3.4.32 from libstdc++", message);
        Assert.Contains("scripts/setup.sh", message);
    }

    [Fact]
    public void AMissingLibtorchNamesThePackageToAdd()
    {
        var message = TorchRuntime.Explain("torch_cpu", "Unable to load shared library 'torch_cpu' or one of its dependencies.\nlibtorch_cpu.so: cannot open shared object file");
        Assert.DoesNotContain('\n', message);
        Assert.Contains("add a PackageReference to libtorch-cpu-linux-x64 2.10.0", message);
    }
}
