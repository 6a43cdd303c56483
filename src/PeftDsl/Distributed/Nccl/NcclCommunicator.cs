using System.Runtime.InteropServices;
using PeftDsl.Errors;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftDsl.Distributed.Nccl;

/// <summary>
/// Sums CUDA tensors over ranks with NCCL (PyTorch's <c>libnccl.so.2</c>), on the CUDA default stream, the one
/// TorchSharp's ops run on, so the all-reduce is ordered after the backward pass and before the optimizer step without
/// a host synchronisation. Scalars, broadcasts and barriers go through the control communicator (MPI, or nothing for
/// one rank), which also carries NCCL's unique id from rank 0 to the others.
/// Built against nccl.h's ABI but not yet run on a GPU: <c>bench/gpu/run.sh run</c> ends with the one-rank check
/// (docs/distributed.md).
/// </summary>
public sealed class NcclCommunicator : ICommunicator
{
    private readonly ICommunicator control;
    private IntPtr comm;

    private NcclCommunicator(ICommunicator control, IntPtr comm)
    {
        this.control = control;
        this.comm = comm;
    }

    /// <summary>Joins NCCL on CUDA device <paramref name="device"/> with the control communicator's ranks.</summary>
    /// <exception cref="PeftDslException">NCCL or the CUDA runtime cannot be loaded, or NCCL's init fails.</exception>
    public static unsafe NcclCommunicator Start(ICommunicator control, int device)
    {
        if (NativeLibraries.Load("nccl") == IntPtr.Zero)
            throw new PeftDslException($"NCCL ({string.Join(", ", NativeLibraries.Candidates("nccl"))}) could not be loaded: use PyTorch's CUDA " +
                                       $"libraries (their lib folder on LD_LIBRARY_PATH), or set {NativeLibraries.Variable("nccl")} to libnccl.so.2");
        if (NativeLibraries.Load("cudart") == IntPtr.Zero)
            throw new PeftDslException($"the CUDA runtime ({string.Join(", ", NativeLibraries.Candidates("cudart"))}) could not be loaded; " +
                                       $"set {NativeLibraries.Variable("cudart")} to PyTorch's libcudart");
        Check(NcclNative.cudaSetDevice(device) == 0 ? NcclNative.Success : -1, $"cudaSetDevice({device})");
        var id = default(NcclNative.UniqueId);
        if (control.Rank == 0) Check(NcclNative.ncclGetUniqueId(out id), "ncclGetUniqueId");
        var bytes = new byte[128];
        Marshal.Copy((IntPtr)id.Internal, bytes, 0, 128);
        control.Broadcast(bytes);
        Marshal.Copy(bytes, 0, (IntPtr)id.Internal, 128);
        Check(NcclNative.ncclCommInitRank(out var comm, control.Size, id, control.Rank), "ncclCommInitRank");
        return new NcclCommunicator(control, comm);
    }

    /// <inheritdoc/>
    public int Rank => control.Rank;

    /// <inheritdoc/>
    public int Size => control.Size;

    /// <inheritdoc/>
    public void AllReduceSum(Tensor buffer)
    {
        if (buffer.device_type != DeviceType.CUDA)
        {
            control.AllReduceSum(buffer);
            return;
        }
        if (buffer.dtype != ScalarType.Float32 || !buffer.is_contiguous())
            throw new ArgumentException("the all-reduce buffer must be a contiguous fp32 tensor", nameof(buffer));
        var data = NcclNative.THSTensor_data(buffer.Handle);
        // In place, on the default stream (IntPtr.Zero): queued after the backward pass's kernels, no host wait.
        Check(NcclNative.ncclAllReduce(data, data, (nuint)buffer.NumberOfElements, NcclNative.Float32, NcclNative.Sum, comm, IntPtr.Zero), "ncclAllReduce");
    }

    /// <inheritdoc/>
    public void AllReduceSum(double[] values) => control.AllReduceSum(values);

    /// <inheritdoc/>
    public void Broadcast(byte[] bytes) => control.Broadcast(bytes);

    /// <inheritdoc/>
    public void Barrier() => control.Barrier();

    /// <summary>Leaves NCCL (the control communicator is its owner's to dispose).</summary>
    public void Dispose()
    {
        if (comm == IntPtr.Zero) return;
        NcclNative.ncclCommDestroy(comm);
        comm = IntPtr.Zero;
    }

    private static void Check(int result, string what)
    {
        if (result == NcclNative.Success) return;
        var text = result >= 0 ? Marshal.PtrToStringAnsi(NcclNative.ncclGetErrorString(result)) : "failed";
        throw new PeftDslException($"NCCL: {what}: {text} (error {result})");
    }
}
