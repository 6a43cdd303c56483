using static TorchSharp.torch;

namespace PeftDsl.Distributed;

/// <summary>
/// What data-parallel PEFT training needs from the ranks of a job (docs/distributed.md): who this process is, a sum
/// over ranks of a flat buffer, a broadcast from rank 0 and a barrier. Implemented by <see cref="SingleProcess"/> (no
/// other rank), <see cref="Mpi.MpiCommunicator"/> (MPICH's ABI, across processes and nodes) and
/// <see cref="Nccl.NcclCommunicator"/> (NCCL for CUDA tensors, over one of the others).
/// </summary>
public interface ICommunicator : IDisposable
{
    /// <summary>This process's rank, 0 to <see cref="Size"/> − 1; rank 0 writes checkpoints, metrics and logs.</summary>
    int Rank { get; }

    /// <summary>The number of ranks in the job.</summary>
    int Size { get; }

    /// <summary>Replaces <paramref name="buffer"/> (a contiguous fp32 tensor, on any device) with its sum over ranks.</summary>
    void AllReduceSum(Tensor buffer);

    /// <summary>Replaces each value with its sum over ranks.</summary>
    void AllReduceSum(double[] values);

    /// <summary>Gives every rank rank 0's <paramref name="bytes"/> (the same length on every rank).</summary>
    void Broadcast(byte[] bytes);

    /// <summary>Returns when every rank has called it.</summary>
    void Barrier();
}
