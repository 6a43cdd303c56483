using System.Reflection;
using System.Security.Cryptography;

namespace PeftDsl.Cli.Demo;

/// <summary>
/// The main job's data, embedded in the CLI (built from WordNet 3.0 by tools/demo-data/build.py; licence in
/// data/demo/LICENSE-WordNet.txt): a pre-training corpus, three question-answer tasks and a SentencePiece tokenizer.
/// Written out under the run folder so a user can read and reuse it.
/// </summary>
public static class DemoData
{
    /// <summary>The three tasks, each with <c>NAME.train.jsonl</c> and <c>NAME.dev.jsonl</c> and its own adapter and run folder.</summary>
    public static readonly string[] Tasks = ["pos", "thing", "action"];

    private static readonly string[] Files =
    [
        "corpus.txt", "tokenizer.model", "LICENSE-WordNet.txt",
        .. Tasks.SelectMany(t => new[] { $"{t}.train.jsonl", $"{t}.dev.jsonl" }),
    ];

    /// <summary>Writes the files into <paramref name="directory"/> (unchanged files are left alone); returns a
    /// fingerprint of the corpus and the tokenizer, which name the pre-trained base they give.</summary>
    public static string WriteTo(string directory)
    {
        Directory.CreateDirectory(directory);
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var name in Files)
        {
            using var resource = Assembly.GetExecutingAssembly().GetManifestResourceStream("demo/" + name)
                ?? throw new InvalidOperationException($"embedded demo file {name} is missing from the build");
            using var memory = new MemoryStream();
            resource.CopyTo(memory);
            var bytes = memory.ToArray();
            if (name is "corpus.txt" or "tokenizer.model") hash.AppendData(bytes);
            var path = Path.Combine(directory, name);
            if (!File.Exists(path) || !File.ReadAllBytes(path).AsSpan().SequenceEqual(bytes))
            {
                File.WriteAllBytes(path + ".tmp", bytes);
                File.Move(path + ".tmp", path, overwrite: true);
            }
        }
        return Convert.ToHexString(hash.GetHashAndReset())[..16].ToLowerInvariant();
    }
}
