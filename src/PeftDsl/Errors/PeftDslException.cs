namespace PeftDsl.Errors;

/// <summary>Base of every error PeftDsl raises on bad input. Messages name the file, key or attribute at fault.</summary>
public class PeftDslException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>A config.json that is missing, malformed, or has a key of the wrong type.</summary>
public sealed class ConfigException(string message, Exception? inner = null) : PeftDslException(message, inner);

/// <summary>A checkpoint file or folder that is missing, malformed, truncated, or does not fit the model.</summary>
public class CheckpointException(string message, Exception? inner = null) : PeftDslException(message, inner);

/// <summary>A checkpoint whose keys or shapes do not match the model; lists every missing, unexpected and mis-shaped key.</summary>
public sealed class CheckpointMismatchException(
    string message,
    IReadOnlyList<string> missing,
    IReadOnlyList<string> unexpected,
    IReadOnlyList<string> wrongShape) : CheckpointException(message)
{
    /// <summary>Model keys the checkpoint lacks.</summary>
    public IReadOnlyList<string> Missing { get; } = missing;
    /// <summary>Checkpoint keys the model has no tensor for (and no rule ignores), sorted.</summary>
    public IReadOnlyList<string> Unexpected { get; } = unexpected;
    /// <summary>One line per mismatched tensor: its key, the stored and the expected shape (or dtype).</summary>
    public IReadOnlyList<string> WrongShape { get; } = wrongShape;
}
