using System.Runtime.InteropServices;

namespace PeftDsl.Cli.Bench;

/// <summary>
/// Peak GPU memory of a run, read through NVML (<c>libnvidia-ml.so.1</c>, which every NVIDIA driver installs):
/// TorchSharp 0.107 exposes no CUDA memory statistics. A background thread samples the device's used memory every
/// 2 ms; the peak is what the run added to the device's use when sampling started (the CUDA context included, so
/// bench/gpu/hf_reference.py measures transformers + peft the same way). Null where there is no NVML.
/// </summary>
public sealed class GpuMemorySampler : IDisposable
{
    private const string Library = "libnvidia-ml.so.1";

    [StructLayout(LayoutKind.Sequential)]
    private struct Memory
    {
        public ulong Total;
        public ulong Free;
        public ulong Used;
    }

    [DllImport(Library, EntryPoint = "nvmlInit_v2")]
    private static extern int Init();

    [DllImport(Library, EntryPoint = "nvmlDeviceGetHandleByIndex_v2")]
    private static extern int DeviceByIndex(uint index, out IntPtr device);

    [DllImport(Library, EntryPoint = "nvmlDeviceGetMemoryInfo")]
    private static extern int MemoryInfo(IntPtr device, out Memory memory);

    private readonly IntPtr device;
    private readonly ulong baseline;
    private readonly Thread thread;
    private volatile bool stop;
    private ulong peak;

    private GpuMemorySampler(IntPtr device, ulong baseline)
    {
        this.device = device;
        this.baseline = baseline;
        peak = baseline;
        thread = new Thread(Sample) { IsBackground = true, Name = "nvml-sampler" };
        thread.Start();
    }

    /// <summary>Starts sampling GPU <paramref name="index"/>; null when NVML is missing or fails.</summary>
    public static GpuMemorySampler? Start(int index)
    {
        try
        {
            if (Init() != 0 || DeviceByIndex((uint)index, out var device) != 0 || MemoryInfo(device, out var memory) != 0) return null;
            return new GpuMemorySampler(device, memory.Used);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return null;
        }
    }

    /// <summary>The most the run has added to the device's used memory so far, in bytes.</summary>
    public long PeakBytes => (long)(Interlocked.Read(ref peak) - baseline);

    private void Sample()
    {
        while (!stop)
        {
            if (MemoryInfo(device, out var memory) == 0 && memory.Used > Interlocked.Read(ref peak))
                Interlocked.Exchange(ref peak, memory.Used);
            Thread.Sleep(2);
        }
    }

    /// <summary>Stops sampling and waits for the sampling thread; <see cref="PeakBytes"/> keeps its last value.</summary>
    public void Dispose()
    {
        stop = true;
        thread.Join();
    }
}
