namespace PeftDsl.Runtime;

/// <summary>A generated transformer block; everything under it belongs to <see cref="Layer"/>.</summary>
public interface IBlockModule
{
    /// <summary>This block's 0-based index in its stack (<c>h.{Layer}</c>); PEFT layer selection matches it.</summary>
    int Layer { get; }
}
