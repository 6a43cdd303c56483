using TorchSharp;
using static TorchSharp.torch;

namespace PeftDsl.Peft.Prompts;

/// <summary>The registered module that holds every task (<c>prompt_encoder.{task}.…</c>, peft's names).</summary>
public sealed class PromptEncoderDict : nn.Module, IPeftTensors
{
    /// <summary>An empty dict; the prompt table creates it with its first task.</summary>
    public PromptEncoderDict() : base(nameof(PromptEncoderDict))
    {
    }

    /// <summary>The task's module; it must be registered here (see <c>Contains</c>).</summary>
    public PromptTask this[string task] => (PromptTask)_internal_submodules[task];

    /// <summary>True when the task has a module here.</summary>
    public bool Contains(string task) => _internal_submodules.ContainsKey(task);

    /// <summary>Registers <paramref name="module"/> as the task's module, disposing the one it replaces (as freezing an encoder does).</summary>
    public void Set(string task, PromptTask module)
    {
        Remove(task);
        register_module(task, module);
    }

    /// <summary>Removes and disposes the task's module; a name not here is ignored.</summary>
    public void Remove(string task)
    {
        if (!_internal_submodules.ContainsKey(task)) return;
        var module = _internal_submodules[task];
        _internal_submodules.Remove(task);
        module.Dispose();
    }

    /// <summary>Empty on purpose: children are registered explicitly (<c>register_module</c>), not by TorchSharp's field reflection.</summary>
    protected override void RegisterComponents()
    {
    }
}
