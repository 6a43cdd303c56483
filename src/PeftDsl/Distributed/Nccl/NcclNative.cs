using System.Runtime.InteropServices;

namespace PeftDsl.Distributed.Nccl;

/// <summary>The NCCL functions the gradient all-reduce needs (nccl.h's values), with <c>cudaSetDevice</c> and
/// LibTorchSharp's tensor data pointer.</summary>
internal static unsafe class NcclNative
{
    public const int Success = 0;
    public const int Float32 = 7;   // ncclFloat32
    public const int Sum = 0;       // ncclSum

    /// <summary>nccl.h's <c>ncclUniqueId</c>: 128 opaque bytes, passed by value to <c>ncclCommInitRank</c>.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct UniqueId
    {
        public fixed byte Internal[128];
    }

    [DllImport("nccl")] public static extern int ncclGetVersion(out int version);
    [DllImport("nccl")] public static extern int ncclGetUniqueId(out UniqueId id);
    [DllImport("nccl")] public static extern int ncclCommInitRank(out IntPtr comm, int nranks, UniqueId id, int rank);
    [DllImport("nccl")] public static extern int ncclAllReduce(IntPtr sendbuff, IntPtr recvbuff, nuint count, int datatype, int op, IntPtr comm, IntPtr stream);
    [DllImport("nccl")] public static extern int ncclCommDestroy(IntPtr comm);
    [DllImport("nccl")] public static extern IntPtr ncclGetErrorString(int result);

    [DllImport("cudart")] public static extern int cudaSetDevice(int device);

    // The address of a tensor's first element (a device pointer for a CUDA tensor); TorchSharp exposes no data_ptr.
    [DllImport("LibTorchSharp")] public static extern IntPtr THSTensor_data(IntPtr tensor);
}
