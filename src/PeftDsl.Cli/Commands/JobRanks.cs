using PeftDsl.Distributed;
using PeftDsl.Errors;

namespace PeftDsl.Cli.Commands;

/// <summary>The commands that run as ranks of an MPI job (<c>train</c>, <c>bench</c>; docs/distributed.md): each joins
/// the job its launcher started, or runs alone, and one rank's failure ends the whole job, since the others would wait
/// for it in their next all-reduce.</summary>
internal static class JobRanks
{
    /// <summary>Runs <paramref name="body"/> with this process's ranks; returns its exit code.</summary>
    public static int Run(Func<ICommunicator, int> body)
    {
        using var ranks = Communicator.FromEnvironment();
        try
        {
            return body(ranks);
        }
        catch (Exception e) when (ranks is Distributed.Mpi.MpiCommunicator mpi && EndJob(mpi, e))
        {
            throw;   // not reached: EndJob aborts the job
        }
    }

    // Called from the exception filter, so it runs before the stack unwinds (before NCCL's teardown could wait on
    // the dead step).
    private static bool EndJob(Distributed.Mpi.MpiCommunicator mpi, Exception e)
    {
        var message = e is PeftDslException ? e.Message : e.GetType().Name + ": " + e.Message;
        Console.Error.WriteLine($"error: rank {mpi.Rank} of {mpi.Size}: {message.Split('\n')[0]}");
        Console.Error.Flush();
        // The launcher forwards a rank's output through its proxy, which the abort tears down at once: give it a
        // moment to pass the line on, or a loaded machine loses it (seen: an empty stderr from a refused job).
        Thread.Sleep(500);
        mpi.Abort(e is PeftDslException ? Program.BadInput : Program.InternalError);
        return true;
    }
}
