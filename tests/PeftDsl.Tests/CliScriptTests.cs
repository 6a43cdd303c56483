using System.Diagnostics;
using PeftDsl.Testing;
using Xunit;

namespace PeftDsl.Tests;

/// <summary><c>./scripts/peft</c>, the README's way to run the CLI from a clone, runs the built CLI while it is current
/// instead of going through <c>dotnet run</c> (about 5 s before anything started).</summary>
public sealed class CliScriptTests
{
    /// <summary>The test build has just built the CLI, so the script must neither restore nor build nor <c>dotnet run</c>:
    /// a <c>dotnet</c> first on the PATH records every call, and the only one is the CLI itself.</summary>
    [Fact]
    public async Task ACurrentCliRunsWithoutRestoreOrBuild()
    {
        using var dir = new TempDir();
        var real = Environment.GetEnvironmentVariable("PATH")!.Split(':').Select(p => Path.Combine(p, "dotnet")).First(File.Exists);
        var log = dir.File("calls.log");
        File.WriteAllText(dir.File("dotnet"), $"#!/usr/bin/env bash\necho \"$*\" >> '{log}'\nexec '{real}' \"$@\"\n");
        if (OperatingSystem.IsWindows()) return;   // a bash script: the project runs on Linux
        File.SetUnixFileMode(dir.File("dotnet"), UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);

        var start = new ProcessStartInfo("bash") { RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add(Repo.File("scripts", "peft"));
        start.ArgumentList.Add("--help");
        start.Environment["PATH"] = dir.Path + ":" + Environment.GetEnvironmentVariable("PATH");
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        Assert.True(process.ExitCode == 0, await stderr);
        Assert.Contains("parity", await stdout);
        var call = Assert.Single(File.ReadAllLines(log));
        Assert.EndsWith("src/PeftDsl.Cli/bin/Release/net10.0/linux-x64/peft.dll --help", call);
    }
}
