using PeftDsl.Errors;

namespace PeftDsl.Checkpoints;

/// <summary>
/// Writes a folder so that readers see the old one or the new one, never a mix: the files are written into a hidden
/// sibling, then the folders are swapped by renames. Entries of an existing folder that the new content does not
/// replace (another adapter's subfolder, a README) are carried over into the new folder first.
/// </summary>
public static class AtomicFolder
{
    public static void Write(string folder, Action<string> write)
    {
        var full = Path.GetFullPath(folder).TrimEnd(Path.DirectorySeparatorChar);
        if (File.Exists(full)) throw new PeftDslException($"{folder}: is a file, not a folder");
        var parent = Path.GetDirectoryName(full) ?? throw new PeftDslException($"{folder}: cannot write to the root");
        var name = Path.GetFileName(full);
        try
        {
            Directory.CreateDirectory(parent);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new PeftDslException($"{parent}: cannot create the folder ({e.Message})", e);
        }
        var stamp = $"{Environment.ProcessId}-{Guid.NewGuid():N}"[..16];
        var staging = Path.Combine(parent, $".{name}.tmp-{stamp}");
        var retired = Path.Combine(parent, $".{name}.old-{stamp}");
        try
        {
            Directory.CreateDirectory(staging);
            write(staging);
            if (Directory.Exists(full))
            {
                foreach (var entry in Directory.EnumerateFileSystemEntries(full))
                {
                    var target = Path.Combine(staging, Path.GetFileName(entry));
                    if (File.Exists(target) || Directory.Exists(target)) continue;
                    if (Directory.Exists(entry)) Directory.Move(entry, target);
                    else File.Move(entry, target);
                }
                Directory.Move(full, retired);
                Directory.Move(staging, full);
                Directory.Delete(retired, recursive: true);
            }
            else
            {
                Directory.Move(staging, full);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new PeftDslException($"{folder}: could not be written ({e.Message})", e);
        }
        finally
        {
            if (Directory.Exists(staging)) Directory.Delete(staging, recursive: true);
        }
    }
}
