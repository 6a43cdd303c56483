using System.Globalization;

namespace PeftDsl.Runtime;

/// <summary>
/// The process's resident memory as Linux reports it in <c>/proc/self/status</c>: <c>VmHWM</c>, the high-water mark of
/// the resident set, which a write of "5" to <c>/proc/self/clear_refs</c> resets to the current size, so a benchmark
/// can measure the peak of its timed part alone. Null where the files are missing (not Linux).
/// </summary>
public static class ProcessMemory
{
    /// <summary>The resident set's high-water mark in bytes, or null when it cannot be read.</summary>
    public static long? PeakResidentBytes() => StatusKilobytes("VmHWM:") * 1024;

    /// <summary>The resident set now, in bytes, or null when it cannot be read.</summary>
    public static long? ResidentBytes() => StatusKilobytes("VmRSS:") * 1024;

    /// <summary>Resets the high-water mark to the current resident size; false when the kernel does not allow it.</summary>
    public static bool ResetPeak()
    {
        try
        {
            File.WriteAllText("/proc/self/clear_refs", "5");
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or NotSupportedException)
        {
            return false;
        }
    }

    private static long? StatusKilobytes(string field)
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/self/status"))
            {
                if (!line.StartsWith(field, StringComparison.Ordinal)) continue;
                var parts = line[field.Length..].Trim().Split(' ', StringSplitOptions.RemoveEmptyEntries);
                return parts.Length > 0 && long.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out var kb) ? kb : null;
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }
        return null;
    }
}
