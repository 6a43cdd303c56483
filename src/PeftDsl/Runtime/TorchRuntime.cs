using PeftDsl.Errors;
using static TorchSharp.torch;

namespace PeftDsl.Runtime;

/// <summary>Turns TorchSharp's native-load failure into one line that says what to do.</summary>
public static class TorchRuntime
{
    public static void EnsureNativeLoaded()
    {
        try
        {
            using var probe = zeros(1);
        }
        catch (Exception e) when (e is DllNotFoundException or TypeInitializationException or NotSupportedException)
        {
            var detail = e.InnerException?.Message ?? e.Message;
            throw new PeftDslException(
                "TorchSharp's native library could not be loaded. On Debian 12 run 'scripts/setup.sh' as root: " +
                "libLibTorchSharp.so needs GLIBCXX_3.4.32 (the GCC 13+ libstdc++). Detail: " + detail, e);
        }
    }
}
