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
        if (size is null || size == "1") return SingleProcess.Instance;
        if (!int.TryParse(size, NumberStyles.None, CultureInfo.InvariantCulture, out var ranks) || ranks < 1)
            throw new PeftDslException($"PMI_SIZE is '{size}', not a number of ranks");
        return Mpi.MpiCommunicator.Start(ranks, Timeout());
    }

    private static TimeSpan Timeout()
    {
        var text = Environment.GetEnvironmentVariable(TimeoutVariable);
        if (text is null) return TimeSpan.FromSeconds(300);
        if (!double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var seconds) || !(seconds > 0))
            throw new PeftDslException($"{TimeoutVariable} is '{text}', not a positive number of seconds");
        return TimeSpan.FromSeconds(seconds);
    }
}
