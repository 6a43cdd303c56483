namespace PeftDsl.Peft;

/// <summary>Which family a parameter belongs to: the frozen base model or one of the PEFT methods.</summary>
public enum PeftMethod
{
    /// <summary>The base model's own weights (frozen while adapters train).</summary>
    Base,
    /// <summary>LoRA and DoRA tensors (<c>lora_A</c>, <c>lora_B</c>, <c>lora_magnitude_vector</c>).</summary>
    Lora,
    /// <summary>Bottleneck adapter layers (<c>….bottleneck.{adapter}.…</c>).</summary>
    Adapter,
    /// <summary>IA3 scaling vectors (<c>ia3_l</c>).</summary>
    Ia3,
    /// <summary>Prompt tuning, P-tuning and prefix tuning tasks (<c>prompt_encoder.{task}.…</c>).</summary>
    PromptLearning,
}
