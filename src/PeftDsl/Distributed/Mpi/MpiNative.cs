using System.Runtime.InteropServices;

namespace PeftDsl.Distributed.Mpi;

/// <summary>
/// The handful of MPI functions data-parallel training needs, bound to MPICH's ABI (shared by MPICH, Intel MPI and
/// MVAPICH: one binary runs on those clusters). Handles are ints in that ABI; the constants are MPICH's mpi.h values.
/// A thin binding rather than MPI.NET 1.4.0 (2019, built for MS-MPI's library name): nine functions, no dependency.
/// </summary>
internal static unsafe class MpiNative
{
    private const string Library = "mpi";

    public const int Success = 0;
    public const int CommWorld = 0x44000000;
    public const int Byte = 0x4c00010d;
    public const int Float = 0x4c00040a;
    public const int Double = 0x4c00080b;
    public const int Sum = 0x58000003;
    public static readonly IntPtr InPlace = new(-1);

    /// <summary>Environment variable: the MPI library to load (a path or a name), for an install the loader does not
    /// find by itself (Intel MPI's or MVAPICH's <c>libmpi.so.12</c> in its own folder).</summary>
    public static string LibraryVariable => NativeLibraries.Variable(Library);

    /// <summary>The libraries that provide MPICH's ABI, in the order tried.</summary>
    public static string[] Candidates => NativeLibraries.Candidates(Library);

    /// <summary>Loads an MPICH-ABI library once; false when none is installed.</summary>
    public static bool Load() => NativeLibraries.Load(Library) != IntPtr.Zero;

    [DllImport(Library)] public static extern int MPI_Init(IntPtr argc, IntPtr argv);
    [DllImport(Library)] public static extern int MPI_Initialized(out int flag);
    [DllImport(Library)] public static extern int MPI_Finalize();
    [DllImport(Library)] public static extern int MPI_Comm_rank(int comm, out int rank);
    [DllImport(Library)] public static extern int MPI_Comm_size(int comm, out int size);
    [DllImport(Library)] public static extern int MPI_Allreduce(IntPtr sendbuf, void* recvbuf, int count, int datatype, int op, int comm);
    [DllImport(Library)] public static extern int MPI_Bcast(void* buffer, int count, int datatype, int root, int comm);
    [DllImport(Library)] public static extern int MPI_Barrier(int comm);
    [DllImport(Library)] public static extern int MPI_Abort(int comm, int errorcode);
}
