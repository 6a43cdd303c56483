using PeftDsl.Checkpoints.Safetensors;
using PeftDsl.Testing;
using static TorchSharp.torch;

namespace PeftDsl.Tests;

/// <summary>A temporary folder removed after the test.</summary>
public sealed class TempDir : IDisposable
{
    public TempDir() => Directory.CreateDirectory(Path);

    public string Path { get; } = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "peftdsl-" + Guid.NewGuid().ToString("N"));

    public string File(string name) => System.IO.Path.Combine(Path, name);

    public void Dispose()
    {
        try { Directory.Delete(Path, recursive: true); }
        catch (IOException) { }
    }
}

public static class Fixtures
{
    public static string Directory => Repo.File("tests", "fixtures", "hf-peft");

    public static string Base(string family) => System.IO.Path.Combine(Directory, family + "-base");

    public static string Expected(string caseName) => System.IO.Path.Combine(Directory, caseName + ".expected.safetensors");

    /// <summary>Copies a base checkpoint folder so a test can damage or rewrite it.</summary>
    public static string CopyBase(string family, TempDir into)
    {
        foreach (var f in System.IO.Directory.GetFiles(Base(family)))
            System.IO.File.Copy(f, into.File(System.IO.Path.GetFileName(f)));
        return into.Path;
    }

    /// <summary>All tensors of a safetensors file, in memory.</summary>
    public static Dictionary<string, Tensor> ReadAll(string path)
    {
        using var reader = SafetensorsReader.Open(path);
        return reader.Entries.Keys.ToDictionary(k => k, reader.Read);
    }
}

/// <summary>
/// Tests that seed torch's global generator and expect the same draws (dropout masks, initial weights) run alone:
/// xunit runs other classes in parallel, and any of them drawing random numbers meanwhile would shift the sequence.
/// </summary>
[Xunit.CollectionDefinition(Name, DisableParallelization = true)]
public sealed class GlobalRandomness
{
    public const string Name = "torch's global generator";
}

/// <summary>
/// Tests that measure the process's resident memory run alone: another class freeing tensors meanwhile lowers the
/// resident set under the measurement (CI saw a 256 MiB allocation raise the peak by only 192 MiB).
/// </summary>
[Xunit.CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ResidentMemory
{
    public const string Name = "the process's resident memory";
}
