namespace PeftDsl.Modules;

/// <summary>A module whose checkpoint layout differs from its in-memory layout (GPT-2's Conv1D weights).</summary>
public interface ICheckpointLayout
{
    /// <summary>Whether the checkpoint stores this (module-local) parameter transposed.</summary>
    bool IsTransposedInCheckpoint(string parameterName);
}
