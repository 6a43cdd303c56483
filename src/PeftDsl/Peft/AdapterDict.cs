using TorchSharp;
using static TorchSharp.torch;

namespace PeftDsl.Peft;

/// <summary>
/// Per-adapter modules keyed by adapter name, as peft's <c>ModuleDict</c>s (<c>lora_A</c>, <c>lora_B</c>, …): the
/// child's registration name is the adapter name, so state-dict keys read <c>…c_attn.lora_A.{adapter}.weight</c>.
/// </summary>
public sealed class AdapterDict : nn.Module, IPeftTensors
{
    /// <summary>An empty dict; <c>LoraLayer</c> creates one per tensor kind and adds adapters as they are injected.</summary>
    public AdapterDict() : base("AdapterDict")
    {
    }

    /// <summary>The adapter's module (its tensor is <c>.weight</c>); the adapter must be present (see <c>Contains</c>).</summary>
    public AdapterWeight this[string adapter] => (AdapterWeight)_internal_submodules[adapter];

    /// <summary>True when the adapter has a module here.</summary>
    public bool Contains(string adapter) => _internal_submodules.ContainsKey(adapter);

    /// <summary>Adapter names in registration order (the order they were added).</summary>
    public IEnumerable<string> Names => _internal_submodules.Keys;

    /// <summary>How many adapters are held.</summary>
    public int Count => _internal_submodules.Count;

    /// <summary>Registers <paramref name="module"/> under the adapter's name, so its state-dict key is <c>{adapter}.weight</c>.</summary>
    public void Add(string adapter, AdapterWeight module) => register_module(adapter, module);

    /// <summary>Removes and disposes the adapter's module.</summary>
    public void Remove(string adapter)
    {
        if (!_internal_submodules.ContainsKey(adapter)) return;
        var module = _internal_submodules[adapter];
        _internal_submodules.Remove(adapter);
        module.Dispose();
    }

    /// <summary>Empty on purpose: children are registered explicitly (<c>register_module</c>), not by TorchSharp's field reflection.</summary>
    protected override void RegisterComponents()
    {
    }
}
