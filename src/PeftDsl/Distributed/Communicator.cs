using System.Globalization;
using PeftDsl.Errors;

namespace PeftDsl.Distributed;

/// <summary>The communicator of this process, from the launcher's environment: an MPICH-ABI launcher
/// (<c>mpiexec.mpich</c>, Intel MPI, MVAPICH, Slurm with PMI) sets <c>PMI_RANK</c>/<c>PMI_SIZE</c>; without one the process
/// is the whole job.</summary>
public static class Communicator
{
    /// <summary>Environment variable: seconds a collective may wait for the other ranks (default 300).</summary>
    public const string TimeoutVariable = "PEFTDSL_COLLECTIVE_TIMEOUT";

    /// <summary>Joins the job this process was launched into, or returns <see cref="SingleProcess.Instance"/>.</summary>
    /// <exception cref="PeftDslException">A launcher whose ABI differs (OpenMPI), MPI missing, or a bad timeout.</exception>
    public static ICommunicator FromEnvironment()
    {
        if (Environment.GetEnvironmentVariable("OMPI_COMM_WORLD_SIZE") is { } ompi && ompi != "1")
            throw new PeftDslException($"OpenMPI's mpiexec started this process ({ompi} ranks), but PeftDsl speaks MPICH's ABI: launch with mpiexec.mpich " +
                                       "(Debian's plain mpiexec is OpenMPI's where both are installed)");
        var size = Environment.GetEnvironmentVariable("PMI_SIZE");
        // srun without PMI-2 starts the tasks as separate jobs, each of which would write --out as if alone.
        if (size is null && (Environment.GetEnvironmentVariable("PMIX_RANK") is not null ||
                             Environment.GetEnvironmentVariable("SLURM_STEP_NUM_TASKS") is { } tasks && tasks != "1"))
            throw new PeftDslException("Slurm started several tasks without PMI-2 (PMI_SIZE is not set): launch with srun --mpi=pmi2, " +
                                       "or mpiexec.mpich");
        if (size is null || size == "1") return SingleProcess.Instance;
        if (!int.TryParse(size, NumberStyles.None, CultureInfo.InvariantCulture, out var ranks) || ranks < 1)
            throw new PeftDslException($"PMI_SIZE is '{size}', not a number of ranks");
        return Mpi.MpiCommunicator.Start(ranks, Timeout());
    }

    /// <summary>Environment variable: <c>1</c> sums CUDA gradients with NCCL even in a single process (the one-GPU check
    /// of the NCCL path, at the end of <c>bench/gpu/run.sh run</c>).</summary>
    public const string NcclVariable = "PEFTDSL_NCCL";

    /// <summary>The communicator for training on <paramref name="device"/>: NCCL for CUDA tensors when there are
    /// several ranks (or <see cref="NcclVariable"/> is 1), otherwise <paramref name="ranks"/> itself. A new communicator
    /// is the caller's to dispose.</summary>
    public static ICommunicator ForDevice(ICommunicator ranks, TorchSharp.torch.Device device) =>
        device.type == TorchSharp.DeviceType.CUDA && (ranks.Size > 1 || Environment.GetEnvironmentVariable(NcclVariable) == "1")
            ? Nccl.NcclCommunicator.Start(ranks, (int)device.index)
            : ranks;

    private static TimeSpan Timeout()
    {
        var text = Environment.GetEnvironmentVariable(TimeoutVariable);
        if (text is null) return TimeSpan.FromSeconds(300);
        if (!double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var seconds) || !(seconds > 0))
            throw new PeftDslException($"{TimeoutVariable} is '{text}', not a positive number of seconds");
        return TimeSpan.FromSeconds(seconds);
    }
}
