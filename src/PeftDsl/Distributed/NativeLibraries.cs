using System.Runtime.InteropServices;

namespace PeftDsl.Distributed;

/// <summary>
/// Where this assembly's <c>DllImport("mpi")</c> and <c>DllImport("nccl")</c> go: the first library of each list that
/// loads (an environment variable names one outside the loader's path). One resolver serves both, since .NET takes
/// one per assembly; other names fall through to the default probing.
/// </summary>
internal static class NativeLibraries
{
    private static readonly Dictionary<string, (string Variable, string[] Names)> Known = new()
    {
        ["mpi"] = ("PEFTDSL_MPI_LIBRARY", ["libmpich.so.12", "libmpi.so.12", "libmpich.so"]),
        // PyTorch's CUDA build has loaded its libnccl.so.2 by the time a CUDA tensor exists; this finds that one.
        ["nccl"] = ("PEFTDSL_NCCL_LIBRARY", ["libnccl.so.2", "libnccl.so"]),
        // The CUDA runtime PyTorch's build loaded (CUDA 13 or 12), for cudaSetDevice before NCCL's init.
        ["cudart"] = ("PEFTDSL_CUDART_LIBRARY", ["libcudart.so.13", "libcudart.so.12", "libcudart.so"]),
    };

    private static readonly Dictionary<string, IntPtr> Handles = new();
    private static readonly object Gate = new();

    static NativeLibraries() =>
        NativeLibrary.SetDllImportResolver(typeof(NativeLibraries).Assembly, (name, _, _) => Known.ContainsKey(name) ? Load(name) : IntPtr.Zero);

    /// <summary>The candidates for <paramref name="name"/> ("mpi", "nccl", "cudart"), in the order tried.</summary>
    public static string[] Candidates(string name)
    {
        var (variable, names) = Known[name];
        return Environment.GetEnvironmentVariable(variable) is { Length: > 0 } chosen ? [chosen] : names;
    }

    /// <summary>The environment variable that names <paramref name="name"/>'s library.</summary>
    public static string Variable(string name) => Known[name].Variable;

    /// <summary>Loads <paramref name="name"/>'s library once; <see cref="IntPtr.Zero"/> when none loads.</summary>
    public static IntPtr Load(string name)
    {
        lock (Gate)
        {
            if (Handles.TryGetValue(name, out var handle)) return handle;
            handle = IntPtr.Zero;
            foreach (var candidate in Candidates(name))
                if (NativeLibrary.TryLoad(candidate, out handle)) break;
            Handles[name] = handle;
            return handle;
        }
    }
}
