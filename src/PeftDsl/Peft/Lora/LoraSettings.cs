namespace PeftDsl.Peft.Lora;

/// <summary>Where NeMo applies LoRA dropout: on the adapter's input (peft's only choice) or on its output.</summary>
public enum DropoutPosition
{
    /// <summary>Dropout on the adapter's input, before A (peft's behaviour; the default).</summary>
    Pre,
    /// <summary>Dropout on the adapter's output, after B (a NeMo option).</summary>
    Post,
}

/// <summary>One adapter's hyper-parameters at one site, after <c>rank_pattern</c>/<c>alpha_pattern</c>.</summary>
/// <param name="Scaling">alpha / r, or alpha / √r with rsLoRA.</param>
public sealed record LoraSettings(int Rank, double Scaling, double Dropout, DropoutPosition DropoutPosition, bool UseDora)
{
    /// <summary>True when this call would draw a dropout mask.</summary>
    public bool DropsOut(bool training) => training && Dropout > 0;
}
