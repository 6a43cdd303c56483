using TorchSharp;
using static TorchSharp.torch;

namespace PeftDsl.Peft.Lora;

/// <summary>Initial A [r, in] and B [out, r] for a new adapter: peft's <c>init_lora_weights</c>, or NeMo's per-matrix
/// methods when the config names them.</summary>
internal static class LoraInitializer
{
    public static (Tensor A, Tensor B) Create(LoraConfig config, int rank, long inFeatures, long outFeatures, ScalarType dtype, Device device)
    {
        using var noGrad = no_grad();
        var a = empty(rank, inFeatures, dtype: dtype, device: device);
        var b = empty(outFeatures, rank, dtype: dtype, device: device);
        if (config.AInit is { } aInit) Nemo(a, aInit);
        else if (config.InitLoraWeights == LoraInit.Gaussian) nn.init.normal_(a, 0, 1.0 / rank);
        else KaimingLikeLinear(a);
        if (config.BInit is { } bInit) Nemo(b, bInit);
        else if (config.InitLoraWeights == LoraInit.Off) KaimingLikeLinear(b);   // nn.Linear's own init, as peft leaves it
        else nn.init.zeros_(b);
        return (a, b);
    }

    /// <summary>nn.Linear's default weight init: kaiming-uniform with a = √5.</summary>
    private static void KaimingLikeLinear(Tensor t) => nn.init.kaiming_uniform_(t, Math.Sqrt(5));

    private static void Nemo(Tensor t, NemoInit init)
    {
        switch (init)
        {
            case NemoInit.Xavier: nn.init.xavier_normal_(t); break;
            case NemoInit.Normal: nn.init.normal_(t, 0, 0.2); break;
            case NemoInit.Kaiming: KaimingLikeLinear(t); break;
            default: nn.init.zeros_(t); break;
        }
    }
}
