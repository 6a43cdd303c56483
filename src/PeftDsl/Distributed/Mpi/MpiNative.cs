using System.Runtime.InteropServices;

namespace PeftDsl.Distributed.Mpi;

/// <summary>
/// The handful of MPI functions data-parallel training needs, bound to MPICH's ABI (shared by MPICH, Intel MPI and
/// MVAPICH: one binary runs on those clusters). Handles are ints in that ABI; the constants are MPICH's mpi.h values.
/// A thin binding rather than MPI.NET 1.4.0 (2019, built for MS-MPI's library name): nine functions, no dependency.
/// </summary>
internal static unsafe class MpiNative
{
    /// <summary>The name <see cref="NativeLibraries"/> resolves to an MPICH-ABI library.</summary>
    public const string Library = "mpi";

    public const int Success = 0;
    public const int CommWorld = 0x44000000;
    public const int Byte = 0x4c00010d;
    public const int Float = 0x4c00040a;
    public const int Double = 0x4c00080b;
    public const int Sum = 0x58000003;
    public static readonly IntPtr InPlace = new(-1);

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
