using static TorchSharp.torch;

namespace PeftDsl.Distributed;

/// <summary>A job of one rank: every collective is the identity, so single-process training computes exactly what
/// it computed before ranks existed.</summary>
public sealed class SingleProcess : ICommunicator
{
    /// <summary>The communicator of a process that is the whole job.</summary>
    public static readonly SingleProcess Instance = new();

    private SingleProcess()
    {
    }

    /// <inheritdoc/>
    public int Rank => 0;

    /// <inheritdoc/>
    public int Size => 1;

    /// <inheritdoc/>
    public void AllReduceSum(Tensor buffer)
    {
    }

    /// <inheritdoc/>
    public void AllReduceSum(double[] values)
    {
    }

    /// <inheritdoc/>
    public void Broadcast(byte[] bytes)
    {
    }

    /// <inheritdoc/>
    public void Barrier()
    {
    }

    /// <summary>Nothing to release.</summary>
    public void Dispose()
    {
    }
}
