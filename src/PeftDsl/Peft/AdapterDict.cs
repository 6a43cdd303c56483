using TorchSharp;
using static TorchSharp.torch;

namespace PeftDsl.Peft;

/// <summary>
/// Per-adapter modules keyed by adapter name, as peft's <c>ModuleDict</c>s (<c>lora_A</c>, <c>lora_B</c>, …): the
/// child's registration name is the adapter name, so state-dict keys read <c>…c_attn.lora_A.{adapter}.weight</c>.
/// </summary>
public sealed class AdapterDict : nn.Module, IPeftTensors
{
    public AdapterDict() : base("AdapterDict")
    {
    }

    public AdapterWeight this[string adapter] => (AdapterWeight)_internal_submodules[adapter];

    public bool Contains(string adapter) => _internal_submodules.ContainsKey(adapter);

    public IEnumerable<string> Names => _internal_submodules.Keys;

    public int Count => _internal_submodules.Count;

    public void Add(string adapter, AdapterWeight module) => register_module(adapter, module);

    /// <summary>Removes and disposes the adapter's module.</summary>
    public void Remove(string adapter)
    {
        if (!_internal_submodules.ContainsKey(adapter)) return;
        var module = _internal_submodules[adapter];
        _internal_submodules.Remove(adapter);
        module.Dispose();
    }

    protected override void RegisterComponents()
    {
    }
}
