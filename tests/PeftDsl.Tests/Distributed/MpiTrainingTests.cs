using System.Diagnostics;
using System.Text.Json;
using PeftDsl.Models.Llama;
using PeftDsl.Peft;
using PeftDsl.Testing;
using PeftDsl.Training;
using Xunit;
using static TorchSharp.torch;

namespace PeftDsl.Tests.Distributed;

/// <summary>
/// <c>mpiexec.mpich -n N peft train …</c> end to end (docs/distributed.md): MPICH is installed by scripts/setup.sh, so
/// these run in CI. Dropout is 0 so that the ranks' shares of a batch add up to the one-process step exactly, up to
/// fp32 summation order.
/// </summary>
public sealed class MpiTrainingTests
{
    /// <summary>The <c>peft train</c> tests' workspace: a tokenizer, train.jsonl (48 records) and dev.jsonl (6).</summary>
    private static TempDir Workspace() => Training.TrainCliTests.Workspace();

    private static string[] Train(TempDir dir, string output, params string[] extra) =>
    [
        "train", "--model", Fixtures.Base("llama"), "--tokenizer", dir.File("tok"), "--data", dir.File("train.jsonl"),
        "--out", dir.File(output), "--lr", "5e-3", "--log-every", "1", "--lora-dropout", "0",
        .. (extra.Contains("--batch") ? extra : ["--batch", "8", .. extra]),
    ];

    /// <summary><c>mpiexec.mpich</c> with one or more (ranks, arguments) groups of the built CLI (MPMD: <c>A : B</c>).</summary>
    private static ProcessStartInfo MpiStart(int timeoutSeconds, params (int Ranks, string[] Args)[] groups)
    {
        var start = new ProcessStartInfo("mpiexec.mpich") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var (ranks, args) in groups)
        {
            if (start.ArgumentList.Count > 0) start.ArgumentList.Add(":");
            foreach (var a in new[] { "-n", ranks.ToString(), "dotnet", Path.Combine(AppContext.BaseDirectory, "peft.dll") }.Concat(args))
                start.ArgumentList.Add(a);
        }
        start.Environment["PEFTDSL_COLLECTIVE_TIMEOUT"] = timeoutSeconds.ToString();
        return start;
    }

    /// <summary>Runs an MPI job to its end and returns its exit code and output.</summary>
    internal static (int Code, string Stdout, string Stderr) Mpi(params (int Ranks, string[] Args)[] groups)
    {
        Process process;
        try
        {
            process = Process.Start(MpiStart(60, groups))!;
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new InvalidOperationException("mpiexec.mpich is not installed: scripts/setup.sh installs Debian's mpich", e);
        }
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromMinutes(3)))
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail("mpiexec.mpich did not finish in 3 minutes: " + stderr.Result);
        }
        return (process.ExitCode, stdout.Result, stderr.Result);
    }

    private static List<double> Losses(string run) =>
        File.ReadAllLines(Path.Combine(run, "metrics.jsonl")).Select(l => JsonDocument.Parse(l).RootElement)
            .Where(e => e.TryGetProperty("loss", out _) && e.TryGetProperty("lr", out _))
            .Select(e => e.GetProperty("loss").GetDouble()).ToList();

    private static List<(double Loss, double ExactMatch)> Evaluations(string run) =>
        File.ReadAllLines(Path.Combine(run, "metrics.jsonl")).Select(l => JsonDocument.Parse(l).RootElement)
            .Where(e => e.TryGetProperty("eval_exact_match", out _))
            .Select(e => (e.GetProperty("eval_loss").GetDouble(), e.GetProperty("eval_exact_match").GetDouble())).ToList();

    private static Dictionary<string, Tensor> Adapter(string run)
    {
        using var model = LlamaForCausalLM.FromPretrained(Fixtures.Base("llama"));
        model.Adapters.Load(run);
        return model.AllParameters().Where(p => p.Name.Contains("lora_")).ToDictionary(p => p.Name, p => p.Parameter.detach().clone());
    }

    /// <summary>Two ranks, each on half of every batch, train the adapter one process trains on the whole batches, and
    /// their split evaluation (every other batch of 4 each) gives the one-process evaluation.</summary>
    [Fact]
    public void TwoRanksOnHalvesEqualOneRankOnTheWhole()
    {
        using var dir = Workspace();
        string[] eval = ["--eval", dir.File("dev.jsonl"), "--eval-every", "5", "--batch", "4"];
        var (code1, _, err1) = ParityTests.Peft(Train(dir, "one", ["--steps", "5", .. eval]));
        Assert.True(code1 == 0, err1);
        // The two ranks also recompute their blocks in backward (activation checkpointing): the same gradients either way.
        var (code2, stdout2, err2) = Mpi((2, Train(dir, "two", ["--steps", "5", "--gradient-checkpointing", .. eval])));
        Assert.True(code2 == 0, err2);
        Assert.Contains("ranks: 2 (MPI)", stdout2);
        Assert.Single(stdout2.Split('\n'), l => l.StartsWith("finished after 5 steps"));   // rank 0 alone reports

        var one = Losses(dir.File("one"));
        var two = Losses(dir.File("two"));
        Assert.Equal(5, one.Count);
        Assert.Equal(one.Count, two.Count);
        for (var i = 0; i < one.Count; i++) Assert.True(Math.Abs(one[i] - two[i]) < 1e-4, $"step {i + 1}: {one[i]} vs {two[i]}");
        var evalOne = Evaluations(dir.File("one"));
        var evalTwo = Evaluations(dir.File("two"));
        Assert.Single(evalOne);
        Assert.Single(evalTwo);
        Assert.True(Math.Abs(evalOne[0].Loss - evalTwo[0].Loss) < 1e-4, $"eval loss {evalOne[0].Loss} vs {evalTwo[0].Loss}");
        Assert.Equal(evalOne[0].ExactMatch, evalTwo[0].ExactMatch);
        var a = Adapter(dir.File("one"));
        var b = Adapter(dir.File("two"));
        Assert.Equal(a.Keys.Order(), b.Keys.Order());
        Assert.NotEmpty(a);
        foreach (var (name, tensor) in a)
            Assert.True(tensor.allclose(b[name], rtol: 1e-3, atol: 1e-5), $"{name}: max {(tensor - b[name]).abs().max().item<float>()}");
    }

    /// <summary>A run of 2 ranks stopped by a signal resumes on 1 rank: the global batch, the data position and the
    /// schedule carry over, so its losses are those of a run never interrupted.</summary>
    [Fact]
    public void TwoRanksStoppedResumeOnOneRankAsIfUninterrupted()
    {
        // Enough steps that the signal lands well before the end, however slow the machine is to deliver it.
        using var dir = Workspace();
        var (code1, _, err1) = ParityTests.Peft(Train(dir, "whole", "--steps", "120"));
        Assert.True(code1 == 0, err1);

        using (var job = Launch(2, Train(dir, "run", "--steps", "120", "--save-every", "1")))
        {
            Training.TrainCliTests.WaitForLine(job, "step 3/120");
            foreach (var rank in Ranks(job)) Signal(rank, 2);   // SIGINT to every rank, as Ctrl-C under mpiexec
            Assert.True(job.WaitForExit(TimeSpan.FromMinutes(2)), "the stopped job did not end");
        }
        var stoppedAt = TrainingCheckpoint.ReadState(dir.File("run/checkpoint")).Step;
        Assert.InRange(stoppedAt, 3, 119);
        var (code2, stdout2, err2) = ParityTests.Peft(Train(dir, "run", "--steps", "120", "--save-every", "1", "--resume"));
        Assert.True(code2 == 0, err2);
        Assert.Contains($"resuming at step {stoppedAt}", stdout2);

        var whole = Losses(dir.File("whole"));
        var resumed = Losses(dir.File("run"));
        Assert.Equal(120, whole.Count);
        Assert.Equal(120, resumed.Count);
        for (var i = 0; i < whole.Count; i++) Assert.True(Math.Abs(whole[i] - resumed[i]) < 1e-4, $"step {i + 1}: {whole[i]} vs {resumed[i]}");
    }

    /// <summary>A rank killed mid-run ends the job within a bounded time (no hang), and the last checkpoint loads.</summary>
    [Fact]
    public void AKilledRankEndsTheJobAndTheLastCheckpointLoads()
    {
        using var dir = Workspace();
        using (var job = Launch(2, Train(dir, "run", "--steps", "400", "--save-every", "2")))
        {
            Training.TrainCliTests.WaitForLine(job, "checkpoint at step 2");
            var victim = Ranks(job).Single(pid => File.ReadAllText($"/proc/{pid}/environ").Split('\0').Contains("PMI_RANK=1"));
            Signal(victim, 9);
            Assert.True(job.WaitForExit(TimeSpan.FromSeconds(90)), "the job outlived its killed rank by 90 s");
            Assert.NotEqual(0, job.ExitCode);
        }
        var checkpoint = dir.File("run/checkpoint");
        var step = TrainingCheckpoint.ReadState(checkpoint).Step;
        Assert.InRange(step, 2, 399);
        using var model = LlamaForCausalLM.FromPretrained(Fixtures.Base("llama"));
        model.Adapters.Load(Path.Combine(checkpoint, TrainingCheckpoint.AdapterFolder));
        Assert.Equal(["default"], model.Adapters.Names);
    }

    /// <summary>A rank that hangs (stopped, not dead) is found by the others' collective timeout: the job ends with
    /// one line saying so instead of waiting for ever.</summary>
    [Fact]
    public void AHangingRankEndsTheJobAfterTheCollectiveTimeout()
    {
        using var dir = Workspace();
        using var job = Launch(2, Train(dir, "run", "--steps", "400"), timeoutSeconds: 15);
        var errors = new System.Text.StringBuilder();
        job.ErrorDataReceived += (_, e) => { lock (errors) errors.AppendLine(e.Data); };
        Training.TrainCliTests.WaitForLine(job, "step 2/400");
        var frozen = Ranks(job).Single(pid => File.ReadAllText($"/proc/{pid}/environ").Split('\0').Contains("PMI_RANK=1"));
        Signal(frozen, 19);   // SIGSTOP: alive, but never reaches the next all-reduce
        try
        {
            Assert.True(job.WaitForExit(TimeSpan.FromSeconds(90)), "the job waited for the stopped rank for 90 s");
            job.WaitForExit();
            Assert.NotEqual(0, job.ExitCode);
            lock (errors) Assert.Contains("rank 0 of 2: an all-reduce waited more than 15 s for the other ranks", errors.ToString());
        }
        finally
        {
            if (File.Exists($"/proc/{frozen}/stat")) Signal(frozen, 9);
        }
    }

    /// <summary>Starts an MPI job of <paramref name="ranks"/> ranks, its standard output left to read.</summary>
    private static Process Launch(int ranks, string[] args, int timeoutSeconds = 60)
    {
        var process = Process.Start(MpiStart(timeoutSeconds, (ranks, args)))!;
        process.ErrorDataReceived += (_, _) => { };
        process.BeginErrorReadLine();
        return process;
    }

    /// <summary>The job's rank processes: the <c>dotnet</c> descendants of <c>mpiexec</c> (through its proxy).</summary>
    private static List<int> Ranks(Process job)
    {
        var parents = Directory.GetDirectories("/proc").Select(Path.GetFileName).Where(n => n!.All(char.IsDigit))
            .Select(n => (Pid: int.Parse(n!), Stat: TryRead($"/proc/{n}/stat")))
            .Where(p => p.Stat is not null)
            .ToDictionary(p => p.Pid, p => int.Parse(p.Stat![(p.Stat!.LastIndexOf(')') + 2)..].Split(' ')[1]));
        var found = new List<int>();
        var frontier = new Queue<int>([job.Id]);
        while (frontier.Count > 0)
        {
            var pid = frontier.Dequeue();
            foreach (var child in parents.Where(p => p.Value == pid).Select(p => p.Key))
            {
                frontier.Enqueue(child);
                if (TryRead($"/proc/{child}/cmdline") is { } cmd && cmd.Contains("peft.dll")) found.Add(child);
            }
        }
        Assert.NotEmpty(found);
        return found;
    }

    private static string? TryRead(string path)
    {
        try
        {
            return File.ReadAllText(path);
        }
        catch (IOException)
        {
            return null;
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }
    }

    private static void Signal(int pid, int signal) => Process.Start("kill", [$"-{signal}", pid.ToString()])!.WaitForExit();

    /// <summary>Ranks that start from different adapters (another --seed) refuse together, naming the rank.</summary>
    [Fact]
    public void RanksThatStartDifferentlyRefuseTogether()
    {
        using var dir = Workspace();
        var (code, _, stderr) = Mpi((1, Train(dir, "run", "--steps", "2", "--seed", "1")), (1, Train(dir, "run", "--steps", "2", "--seed", "2")));
        Assert.NotEqual(0, code);
        Assert.Contains("rank 1 of 2 starts from another model or data than rank 0", stderr);
        Assert.False(File.Exists(Path.Combine(dir.File("run"), "adapter_model.safetensors")));
    }

    [Fact]
    public void MoreRanksThanExamplesInABatchIsRefused()
    {
        using var dir = Workspace();
        var (code, _, stderr) = Mpi((3, Train(dir, "run", "--steps", "2", "--batch", "2")));
        Assert.NotEqual(0, code);
        Assert.Contains("--batch 2 is smaller than the 3 ranks", stderr);
    }

    /// <summary>peft bench under two ranks reports the gradient all-reduce beside the step (rank 0 alone writes).</summary>
    [Fact]
    public void BenchReportsTheAllReduceTimeOfTwoRanks()
    {
        using var dir = new TempDir();
        var (code, stdout, stderr) = Mpi((2, ["bench", "--shape", "gpt2-tiny", "--lora-r", "4", "--batch", "2", "--length", "16",
            "--steps", "3", "--new-tokens", "0", "--json", dir.File("b.json")]));
        Assert.True(code == 0, stderr);
        Assert.Single(stdout.Split('\n'), l => l.StartsWith("all-reduce ") && l.Contains("2 ranks (MPI)"));
        using var json = JsonDocument.Parse(File.ReadAllText(dir.File("b.json")));
        Assert.Equal(2, json.RootElement.GetProperty("ranks").GetInt32());
        Assert.True(json.RootElement.GetProperty("allreduce_ms").GetDouble() > 0);
    }

    /// <summary>A launch without a loadable MPI library is one line saying what to install.</summary>
    [Fact]
    public void AMissingMpiLibraryIsOneLine()
    {
        using var dir = Workspace();
        var (code, _, stderr) = ParityTests.PeftWith([("PMI_SIZE", "2"), ("PMI_RANK", "0"), ("PEFTDSL_MPI_LIBRARY", "/nonexistent/libmpich.so.12")],
            Train(dir, "run", "--steps", "1"));
        Assert.Equal(2, code);
        Assert.Equal("error: an MPI launcher started this process (2 ranks), but no MPICH-compatible MPI library (/nonexistent/libmpich.so.12) " +
                     "could be loaded: on Debian/Ubuntu apt-get install mpich, or set PEFTDSL_MPI_LIBRARY to the library's path", stderr.Trim());
    }

    /// <summary>The GPU path's error where NCCL cannot be loaded is one line naming what to provide (the variable points
    /// at no library, so this holds on a machine with NCCL too; nothing else in the process loads NCCL). The path itself
    /// is checked on a GPU by bench/gpu/run.sh.</summary>
    [Fact]
    public void AMissingNcclIsOneLine()
    {
        Environment.SetEnvironmentVariable("PEFTDSL_NCCL_LIBRARY", "/nonexistent/libnccl.so.2");
        try
        {
            var e = Assert.Throws<Errors.PeftDslException>(() => PeftDsl.Distributed.Nccl.NcclCommunicator.Start(PeftDsl.Distributed.SingleProcess.Instance, 0));
            Assert.Equal("NCCL (/nonexistent/libnccl.so.2) could not be loaded: use PyTorch's CUDA libraries (their lib folder on " +
                         "LD_LIBRARY_PATH), or set PEFTDSL_NCCL_LIBRARY to libnccl.so.2", e.Message);
        }
        finally
        {
            Environment.SetEnvironmentVariable("PEFTDSL_NCCL_LIBRARY", null);
        }
    }

    /// <summary>OpenMPI's launcher (another ABI) is named, not crashed into.</summary>
    [Fact]
    public void AnOpenMpiLaunchIsRefusedByName()
    {
        using var dir = Workspace();
        var (code, _, stderr) = ParityTests.PeftWith([("OMPI_COMM_WORLD_SIZE", "2")], Train(dir, "run", "--steps", "1"));
        Assert.Equal(2, code);
        Assert.Contains("OpenMPI's mpiexec started this process (2 ranks), but PeftDsl speaks MPICH's ABI", stderr);
    }
}
