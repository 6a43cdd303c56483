using PeftDsl.Modules;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftDsl.Peft.Lora;

/// <summary>
/// peft's <c>modules_to_save</c> for the input embedding and the LM head: a whole trainable copy of the table per
/// adapter, used instead of the frozen one while the adapter is active. Registered as <c>modules_to_save</c> under the
/// module, so the copies are named as peft names them (<c>…embed_tokens.modules_to_save.{adapter}.weight</c>); peft's
/// file stores them under the module's own key (<c>…embed_tokens.weight</c>).
/// </summary>
public sealed class ModulesToSave : nn.Module, IPeftTensors
{
    private readonly Dictionary<string, SavedCopy> copies = new(StringComparer.Ordinal);

    /// <param name="applying">The adapters in use now (active and enabled), in order; the last with a copy wins.</param>
    internal ModulesToSave(Func<IEnumerable<string>> applying) : base(nameof(ModulesToSave)) => Applying = applying;

    private Func<IEnumerable<string>> Applying { get; }

    /// <summary>Adapters with a copy here.</summary>
    public IReadOnlyCollection<string> Adapters => copies.Keys;

    /// <summary>The adapter's trainable copy of the weight.</summary>
    public Parameter Weight(string adapter) => copies[adapter].weight;

    /// <summary>The weight to compute with: the last applying adapter's copy, or null for the module's own.</summary>
    internal Tensor? Current() => Applying().Where(copies.ContainsKey).Select(a => (Tensor)copies[a].weight).LastOrDefault();

    internal void Add(string adapter, Tensor initial)
    {
        var copy = new SavedCopy(initial);
        copies[adapter] = copy;
        register_module(adapter, copy);
    }

    internal void Remove(string adapter)
    {
        if (!copies.Remove(adapter, out var copy)) return;
        _internal_submodules.Remove(adapter);
        copy.Dispose();
    }

    /// <summary>Empty on purpose: children are registered explicitly, not by field reflection.</summary>
    protected override void RegisterComponents()
    {
    }

    /// <summary>One adapter's copy: a module holding <c>weight</c>, as peft's deep copy of the original module.</summary>
    private sealed class SavedCopy : nn.Module, IPeftTensors
    {
        public readonly Parameter weight;

        public SavedCopy(Tensor initial) : base(nameof(SavedCopy))
        {
            weight = OwnedParameter.Of(initial);
            register_parameter("weight", weight);
        }

        protected override void RegisterComponents()
        {
        }
    }
}
