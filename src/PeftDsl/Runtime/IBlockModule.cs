namespace PeftDsl.Runtime;

/// <summary>A generated transformer block; everything under it belongs to <see cref="Layer"/>.</summary>
public interface IBlockModule
{
    int Layer { get; }
}
