using TorchSharp;
using static TorchSharp.torch;

namespace PeftDsl.Modules;

/// <summary>A plain container for dotted checkpoint names (T5's <c>layer.0.SelfAttention</c>): it only gives its
/// children their place in the state-dict tree.</summary>
public sealed class ModuleNode : nn.Module
{
    /// <summary>An empty container; the generated constructor adds its children.</summary>
    public ModuleNode() : base(nameof(ModuleNode))
    {
    }

    /// <summary>Registers <paramref name="child"/> under <paramref name="name"/> (one segment of a dotted checkpoint name).</summary>
    public void Add(string name, nn.Module child) => register_module(name, child);
}
