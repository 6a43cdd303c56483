using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using PeftDsl.Errors;
using static TorchSharp.torch;

namespace PeftDsl.Runtime;

/// <summary>
/// Turns TorchSharp's native-load failure into one line that says what to install. The check runs once, before
/// TorchSharp first loads its natives (which, failing, prints a page of probing trace and ends in a
/// <c>TypeInitializationException</c>). Every model (a <c>LanguageModel</c>: the generated roots) and the <c>peft</c> CLI
/// run it; an application that calls TorchSharp before it builds a model can call <see cref="EnsureNativeLoaded"/> first.
/// </summary>
public static class TorchRuntime
{
    private static readonly Lazy<string?> Failure = new(Probe);

    /// <summary>Checks that libtorch loads here, then allocates a one-element tensor; call it at startup.</summary>
    /// <exception cref="PeftDslException">The native library could not be loaded; the message says how to fix it.</exception>
    public static void EnsureNativeLoaded()
    {
        Ensure();
        try
        {
            using var probe = zeros(1);
        }
        catch (Exception e) when (e is DllNotFoundException or TypeInitializationException or NotSupportedException)
        {
            throw new PeftDslException("TorchSharp's native library could not be loaded: " + FirstLine(e.InnerException?.Message ?? e.Message), e);
        }
    }

    /// <summary>The check alone, without touching TorchSharp: for a field initializer, which runs before a base
    /// constructor (nn.Module's is the model's first call into libtorch).</summary>
    /// <returns>Always true.</returns>
    /// <exception cref="PeftDslException">libtorch cannot be loaded; the message says what to install.</exception>
    public static bool Ensure() => Failure.Value is { } failure ? throw new PeftDslException(failure) : true;

    // TorchSharp loads torch_cpu and LibTorchSharp relative to its own assembly, as DllImport probes: the
    // application's folder (its deps.json), then the system's search path (LD_LIBRARY_PATH, where a GPU user puts
    // PyTorch's CUDA libraries). Loading them here first lets the failure be explained before TorchSharp reports it.
    private static string? Probe()
    {
        var torchSharp = typeof(TorchSharp.torch).Assembly;
        foreach (var library in new[] { "torch_cpu", "LibTorchSharp" })
        {
            try
            {
                NativeLibrary.Load(library, torchSharp, null);
            }
            catch (Exception e) when (e is DllNotFoundException or BadImageFormatException)
            {
                return Explain(library, e.Message);
            }
        }
        return null;
    }

    // Internal for its test: the too-old C++ runtime cannot be staged on a machine that has the right one.
    internal static string Explain(string library, string error)
    {
        var abi = Regex.Match(error, @"(GLIBCXX|CXXABI)_[0-9.]+");
        if (abi.Success)
            return $"libtorch is installed but this system's C++ runtime is too old for it ({library} needs {abi.Value} from libstdc++): " +
                   "install GCC 13's libstdc++ or newer; on Debian 12, PeftDsl's scripts/setup.sh does it (README, \"Choosing libtorch\")";
        return $"libtorch could not be loaded ({library} was not found for {RuntimeInformation.RuntimeIdentifier}): add a " +
               "PackageReference to libtorch-cpu-linux-x64 2.10.0 to your application, or, for a GPU, put the lib folder of " +
               "PyTorch's CUDA install on LD_LIBRARY_PATH (README, \"Choosing libtorch\")";
    }

    private static string FirstLine(string text) => text.Split('\n')[0].Trim();
}
