namespace PeftDsl.Peft;

/// <summary>Which family a parameter belongs to: the frozen base model or one of the PEFT methods.</summary>
public enum PeftMethod
{
    Base,
    Lora,
    Adapter,
    Ia3,
    PromptLearning,
}
