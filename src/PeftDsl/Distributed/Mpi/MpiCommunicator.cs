using System.Diagnostics;
using PeftDsl.Errors;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftDsl.Distributed.Mpi;

/// <summary>
/// Ranks over MPI (MPICH's ABI), started by <c>mpiexec.mpich -n N peft train …</c> or Slurm's <c>srun</c>. Collectives
/// on a GPU tensor go through the host (training uses NCCL for those: <see cref="Nccl.NcclCommunicator"/>). A collective
/// that waits longer than <see cref="Timeout"/> for the other ranks (one died, or hangs) ends this rank with one line,
/// and the launcher ends the rest: never a silent hang. The first collective is not timed: ranks reach it after
/// loading the model, which takes as long as it takes.
/// </summary>
public sealed unsafe class MpiCommunicator : ICommunicator
{
    private readonly Thread watchdog;
    private long started;                // Stopwatch timestamp of the collective in progress (Interlocked)
    private volatile string? inCollective;
    private volatile bool armed;         // after the first collective: ranks load models at different speeds before it
    private volatile bool disposed;

    /// <summary>How long a collective may wait for the other ranks before the job is ended.</summary>
    public TimeSpan Timeout { get; }

    private MpiCommunicator(int rank, int size, TimeSpan timeout)
    {
        Rank = rank;
        Size = size;
        Timeout = timeout;
        watchdog = new Thread(Watch) { IsBackground = true, Name = "peft collective watchdog" };
        watchdog.Start();
    }

    /// <summary>Initialises MPI (once per process) and joins the job.</summary>
    /// <param name="expectedSize">The launcher's world size (<c>PMI_SIZE</c>), checked against MPI's.</param>
    /// <param name="timeout">How long a collective may wait.</param>
    /// <exception cref="PeftDslException">No MPICH-ABI library is installed, or MPI disagrees with the launcher.</exception>
    public static MpiCommunicator Start(int expectedSize, TimeSpan timeout)
    {
        if (NativeLibraries.Load(MpiNative.Library) == IntPtr.Zero)
            throw new PeftDslException($"an MPI launcher started this process ({expectedSize} ranks), but no MPICH-compatible MPI library " +
                                       $"({string.Join(", ", NativeLibraries.Candidates(MpiNative.Library))}) could be loaded: on Debian/Ubuntu " +
                                       $"apt-get install mpich, or set {NativeLibraries.Variable(MpiNative.Library)} to the library's path");
        Check(MpiNative.MPI_Initialized(out var initialized), "MPI_Initialized");
        if (initialized == 0) Check(MpiNative.MPI_Init(IntPtr.Zero, IntPtr.Zero), "MPI_Init");
        Check(MpiNative.MPI_Comm_rank(MpiNative.CommWorld, out var rank), "MPI_Comm_rank");
        Check(MpiNative.MPI_Comm_size(MpiNative.CommWorld, out var size), "MPI_Comm_size");
        if (size != expectedSize)
            throw new PeftDslException($"the launcher started {expectedSize} ranks but MPI sees {size}: was it launched by another MPI's mpiexec? " +
                                       "Use mpiexec.mpich (MPICH's ABI), or srun --mpi=pmi2");
        return new MpiCommunicator(rank, size, timeout);
    }

    /// <inheritdoc/>
    public int Rank { get; }

    /// <inheritdoc/>
    public int Size { get; }

    /// <inheritdoc/>
    public void AllReduceSum(Tensor buffer)
    {
        if (buffer.dtype != ScalarType.Float32 || !buffer.is_contiguous())
            throw new ArgumentException("the all-reduce buffer must be a contiguous fp32 tensor", nameof(buffer));
        if (buffer.device_type != DeviceType.CPU)
        {
            using var host = buffer.cpu();
            AllReduceSum(host);
            buffer.copy_(host);
            return;
        }
        var count = checked((int)buffer.NumberOfElements);
        fixed (byte* data = buffer.bytes)
        {
            var pointer = data;
            Collective("all-reduce", () => MpiNative.MPI_Allreduce(MpiNative.InPlace, pointer, count, MpiNative.Float, MpiNative.Sum, MpiNative.CommWorld));
        }
    }

    /// <inheritdoc/>
    public void AllReduceSum(double[] values)
    {
        fixed (double* data = values)
        {
            var pointer = data;
            Collective("all-reduce", () => MpiNative.MPI_Allreduce(MpiNative.InPlace, pointer, values.Length, MpiNative.Double, MpiNative.Sum, MpiNative.CommWorld));
        }
    }

    /// <inheritdoc/>
    public void Broadcast(byte[] bytes)
    {
        fixed (byte* data = bytes)
        {
            var pointer = data;
            Collective("broadcast", () => MpiNative.MPI_Bcast(pointer, bytes.Length, MpiNative.Byte, 0, MpiNative.CommWorld));
        }
    }

    /// <inheritdoc/>
    public void Barrier() => Collective("barrier", () => MpiNative.MPI_Barrier(MpiNative.CommWorld));

    /// <summary>Ends every rank of the job (after this rank printed why).</summary>
    public void Abort(int code) => MpiNative.MPI_Abort(MpiNative.CommWorld, code);

    /// <summary>Leaves MPI; the process may not use MPI afterwards.</summary>
    public void Dispose()
    {
        if (disposed) return;
        disposed = true;
        MpiNative.MPI_Finalize();
    }

    private void Collective(string what, Func<int> call)
    {
        Interlocked.Exchange(ref started, Stopwatch.GetTimestamp());
        inCollective = what;
        try
        {
            Check(call(), what);
        }
        finally
        {
            inCollective = null;
            armed = true;
        }
    }

    private void Watch()
    {
        while (!disposed)
        {
            Thread.Sleep(200);
            if (armed && inCollective is { } what && Stopwatch.GetElapsedTime(Interlocked.Read(ref started)) > Timeout)
            {
                Console.Error.WriteLine($"error: rank {Rank} of {Size}: an {what} waited more than {Timeout.TotalSeconds:0} s for the other ranks " +
                                        "(one has died or hangs); ending this rank, and the launcher ends the job");
                Environment.Exit(1);
            }
        }
    }

    private static void Check(int code, string what)
    {
        if (code != MpiNative.Success) throw new PeftDslException($"MPI: {what} failed with error {code}");
    }
}
