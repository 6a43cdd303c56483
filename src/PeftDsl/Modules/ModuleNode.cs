using TorchSharp;
using static TorchSharp.torch;

namespace PeftDsl.Modules;

/// <summary>A plain container for dotted checkpoint names (T5's <c>layer.0.SelfAttention</c>): it only gives its
/// children their place in the state-dict tree.</summary>
public sealed class ModuleNode : nn.Module
{
    public ModuleNode() : base(nameof(ModuleNode))
    {
    }

    public void Add(string name, nn.Module child) => register_module(name, child);
}
