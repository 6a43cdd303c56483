using static TorchSharp.torch;

namespace PeftDsl.Runtime;

/// <summary>
/// Backward through our custom autograd functions (checkpointed blocks, 4-bit matmuls). The native autograd engine
/// calls their backward, and an exception cannot cross it (the process would abort), so one that fails (out of
/// memory, most likely) records its error here and returns no gradient; <see cref="Backward"/> throws it when the
/// backward call returns, and the next checkpointed forward throws it otherwise.
/// </summary>
public static class Autograd
{
    private static Exception? failure;

    /// <summary><c>loss.backward()</c>, then the error of any custom backward that failed during it.</summary>
    public static void Backward(Tensor loss)
    {
        loss.backward();
        ThrowIfBackwardFailed();
    }

    /// <summary>Throws the error a custom backward left, if any (once).</summary>
    public static void ThrowIfBackwardFailed()
    {
        if (Interlocked.Exchange(ref failure, null) is { } e)
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(e);
    }

    /// <summary>Records the first error of a custom backward until someone throws it.</summary>
    internal static void Fail(Exception e) => Interlocked.CompareExchange(ref failure, e, null);
}
