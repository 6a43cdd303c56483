using TorchSharp;
using static TorchSharp.torch;

namespace PeftDsl.Peft.Prompts;

/// <summary>
/// One task of the prompt table: a module that produces the task's saved rows (<see cref="PromptConfig.TotalVirtualTokens"/>
/// × <see cref="PromptConfig.RowWidth"/>). Its parameters carry peft's in-memory names under
/// <c>prompt_encoder.{task}.</c> (<c>embedding.weight</c>, <c>mlp_head.0.weight</c>, <c>lstm_head.weight_ih_l0</c>, …).
/// </summary>
public abstract class PromptTask : nn.Module
{
    /// <param name="name">The module's TorchSharp name.</param>
    /// <param name="config">The task's configuration, kept as <see cref="Config"/>.</param>
    protected PromptTask(string name, PromptConfig config) : base(name) => Config = config;

    /// <summary>The task's configuration, the model's geometry filled in.</summary>
    public PromptConfig Config { get; }

    /// <summary>The task's rows, computed once per forward call (not per example or per layer).</summary>
    public abstract Tensor Rows();

    /// <summary>True when an encoder produces the rows (P-tuning, projected prefix), so freezing changes the module.</summary>
    public virtual bool HasEncoder => false;

    /// <summary>Empty on purpose: subclasses register their modules explicitly (<c>register_module</c>) under peft's names.</summary>
    protected override void RegisterComponents()
    {
    }
}

/// <summary>The rows themselves are the parameters: prompt tuning, a loaded adapter of any method (peft saves the
/// encoder's output) and prefix tuning without projection.</summary>
public sealed class PromptEmbeddingTask : PromptTask
{
    /// <param name="config">The task's configuration.</param>
    /// <param name="rows">(total virtual tokens, row width) the initial rows; copied into <c>embedding</c>.</param>
    public PromptEmbeddingTask(PromptConfig config, Tensor rows) : base(nameof(PromptEmbeddingTask), config)
    {
        embedding = new Modules.Embedding(rows.shape[0], rows.shape[1]);
        using (no_grad()) embedding.weight.copy_(rows);
        register_module("embedding", embedding);
    }

    /// <summary>The rows as a parameter, [total virtual tokens, row width] (peft's <c>embedding</c>).</summary>
    public readonly Modules.Embedding embedding;

    /// <summary>The table's weight itself (an alias, so gradients reach it): (total virtual tokens, row width).</summary>
    public override Tensor Rows() => embedding.weight.alias();
}
