using PeftDsl.Errors;

namespace PeftDsl.Checkpoints;

/// <summary>
/// Writes a folder so that readers find the old content or the new one, never a half-written mix: the new files are
/// written into a hidden sibling, then the folders are swapped by two renames (between them the folder is briefly
/// absent). With <c>keepOthers</c>, entries of the old folder that the new content does not replace (another
/// adapter's subfolder, a README) are then moved into the new one; if that fails, the old folder is left beside it
/// and the error names it, so nothing of the user's is deleted.
/// </summary>
public static class AtomicFolder
{
    /// <summary>Replaces (or creates) <paramref name="folder"/> with what <paramref name="write"/> puts into the staging
    /// folder it is given, so readers see either the old content or the complete new one.</summary>
    /// <param name="folder">The folder to write; a file or a symbolic link there is refused.</param>
    /// <param name="write">Writes the new content into the staging folder whose path it receives.</param>
    /// <param name="keepOthers">Carry over entries of the old folder that the new content does not replace (another
    /// adapter's subfolder, a README); false leaves exactly what <paramref name="write"/> wrote.</param>
    /// <exception cref="PeftDslException">The folder could not be written, or the old content could not be carried over
    /// (the message then names the hidden folder it was kept in).</exception>
    public static void Write(string folder, Action<string> write, bool keepOthers = true)
    {
        var full = Path.GetFullPath(folder).TrimEnd(Path.DirectorySeparatorChar);
        if (File.Exists(full)) throw new PeftDslException($"{folder}: is a file, not a folder");
        if (new DirectoryInfo(full).LinkTarget is not null)
            throw new PeftDslException($"{folder}: is a symbolic link; write to the real folder");
        var parent = Path.GetDirectoryName(full) ?? throw new PeftDslException($"{folder}: cannot write to the root");
        var name = Path.GetFileName(full);
        RecoverFromKilledWrites(parent, name, full);
        var stamp = $"{Environment.ProcessId}-{Guid.NewGuid():N}"[..16];
        var staging = Path.Combine(parent, $".{name}.tmp-{stamp}");
        var retired = Path.Combine(parent, $".{name}.old-{stamp}");
        try
        {
            Directory.CreateDirectory(staging);
            write(staging);
            if (!Directory.Exists(full))
            {
                Directory.Move(staging, full);
                return;
            }
            Directory.Move(full, retired);
            try
            {
                Directory.Move(staging, full);
            }
            catch
            {
                Directory.Move(retired, full);   // put the old folder back
                throw;
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

        try
        {
            if (keepOthers)
                foreach (var entry in Directory.EnumerateFileSystemEntries(retired))
                {
                    var target = Path.Combine(full, Path.GetFileName(entry));
                    if (File.Exists(target) || Directory.Exists(target)) continue;
                    if (Directory.Exists(entry)) Directory.Move(entry, target);
                    else File.Move(entry, target);
                }
            Directory.Delete(retired, recursive: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new PeftDslException($"{folder} was written, but the previous content could not be carried over or removed; it is kept in {retired} ({e.Message})", e);
        }
    }

    /// <summary>Puts back a folder whose write was killed between its two renames (and removes dead staging
    /// folders): for a reader that is about to use <paramref name="folder"/>, such as a resume.</summary>
    public static void Recover(string folder)
    {
        var full = Path.GetFullPath(folder).TrimEnd(Path.DirectorySeparatorChar);
        if (Path.GetDirectoryName(full) is { } parent) RecoverFromKilledWrites(parent, Path.GetFileName(full), full);
    }

    /// <summary>
    /// A write killed midway leaves a hidden staging folder (incomplete: deleted) or, killed between the two renames,
    /// the previous folder under its retired name with the real name missing (complete: put back). Only leftovers of
    /// processes that are no longer running are touched.
    /// </summary>
    private static void RecoverFromKilledWrites(string parent, string name, string full)
    {
        if (!Directory.Exists(parent)) return;
        foreach (var leftover in Directory.EnumerateDirectories(parent, $".{name}.*-*"))
        {
            var suffix = Path.GetFileName(leftover)[(name.Length + 2)..];   // "tmp-<pid>-…" or "old-<pid>-…"
            var parts = suffix.Split('-');
            if (parts.Length < 3 || parts[0] is not ("tmp" or "old") || !int.TryParse(parts[1], out var pid) || IsRunning(pid)) continue;
            try
            {
                if (parts[0] == "old" && !Directory.Exists(full)) Directory.Move(leftover, full);
                else Directory.Delete(leftover, recursive: true);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // A leftover that cannot be removed stays where it is; it does not stop this write.
            }
        }
    }

    private static bool IsRunning(int pid)
    {
        try
        {
            using var process = System.Diagnostics.Process.GetProcessById(pid);
            return !process.HasExited;
        }
        catch (ArgumentException)
        {
            return false;
        }
    }
}
