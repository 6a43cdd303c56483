using System.Runtime.CompilerServices;
using Xunit;

namespace PeftDsl.Testing;

/// <summary>
/// Verify-style snapshots without the Verify package (not served here): <c>Name.verified.ext</c> is committed next
/// to the test; a mismatch writes <c>Name.received.ext</c> (git-ignored) and fails. Set PEFTDSL_ACCEPT=1 to accept.
/// Same conventions as Verify, so moving to it later is a package swap.
/// </summary>
public static class Snapshot
{
    public static void Verify(string actual, string name, string extension = "cs", [CallerFilePath] string caller = "")
    {
        var directory = Path.Combine(Path.GetDirectoryName(caller)!, "Snapshots");
        var verified = Path.Combine(directory, $"{name}.verified.{extension}");
        var received = Path.Combine(directory, $"{name}.received.{extension}");
        actual = Normalize(actual);
        if (File.Exists(verified) && Normalize(File.ReadAllText(verified)) == actual)
        {
            File.Delete(received);
            return;
        }
        Directory.CreateDirectory(directory);
        if (Environment.GetEnvironmentVariable("PEFTDSL_ACCEPT") == "1")
        {
            File.WriteAllText(verified, actual);
            File.Delete(received);
            return;
        }
        File.WriteAllText(received, actual);
        Assert.Fail($"Snapshot '{name}' does not match {verified}.\nCompare: diff {received} {verified}\nAccept: PEFTDSL_ACCEPT=1 ./scripts/test");
    }

    private static string Normalize(string text) => text.TrimStart('\uFEFF').ReplaceLineEndings("\n");
}

/// <summary>Paths inside the repository, found from the test source file.</summary>
public static class Repo
{
    public static string Root([CallerFilePath] string caller = "")
    {
        for (var dir = Path.GetDirectoryName(caller); dir is not null; dir = Path.GetDirectoryName(dir))
            if (System.IO.File.Exists(Path.Combine(dir, "PeftDsl.sln"))) return dir;
        throw new InvalidOperationException("PeftDsl.sln not found above " + caller);
    }

    public static string File(params string[] parts) => System.IO.Path.Combine([Root(), .. parts]);
}
