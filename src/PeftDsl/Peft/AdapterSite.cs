using PeftDsl.Peft.Adapters;
using PeftDsl.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftDsl.Peft;

/// <summary>
/// Where a bottleneck adapter goes: on a sublayer's output (or beside the sublayer, on its input), before the residual add. It is registered under its
/// site name (<c>transformer.h.0.mlp_adapter</c>), so adapter weights put here (<c>….mlp_adapter.bottleneck.{adapter}.linear_in.weight</c>)
/// are seen by <c>parameters()</c> and <c>to(device)</c> and kept out of the base checkpoint. With nothing attached it
/// returns its input: a base model pays one call per sublayer and no tensor op.
/// </summary>
public sealed class AdapterSite : nn.Module<Tensor, Tensor, ForwardContext, Tensor>, IPeftTensors
{
    private BottleneckDict? bottleneck;

    /// <summary>Tied adapters: the layer registered at the first block's site of this name, used here as well; not
    /// registered here, so its parameters are counted, moved and saved once.</summary>
    private readonly Dictionary<string, BottleneckLayer> borrowed = new(StringComparer.Ordinal);

    /// <summary>An empty site; the bottleneck registry attaches adapters to it.</summary>
    /// <param name="name">NeMo's site name (<c>attention_adapter</c>, <c>mlp_adapter</c>, <c>cross_attention_adapter</c>).</param>
    /// <param name="layer">The index of the block the site belongs to.</param>
    public AdapterSite(string name, int layer) : base(nameof(AdapterSite))
    {
        Name = name;
        Layer = layer;
    }

    /// <summary>NeMo's site name (<c>attention_adapter</c>, <c>mlp_adapter</c>, <c>cross_attention_adapter</c>), which a config's <c>target_sites</c> selects.</summary>
    public string Name { get; }

    /// <summary>The index of the block the site sits in, which a config's <c>layers_to_transform</c> selects.</summary>
    public int Layer { get; }

    /// <summary>The output projection of the sublayer this site follows (attention output, MLP down projection): NeMo's
    /// placement reads the sublayer's output without its bias. Set by the bottleneck registry; null until needed.</summary>
    internal Modules.PeftLinear? OutputProjection { get; set; }

    /// <summary>True when the adapter acts at this site: its layer is registered here or borrowed from a tied site.</summary>
    public bool Has(string adapter) => Owns(adapter) || borrowed.ContainsKey(adapter);

    /// <summary>The adapter's layer is registered here (false where a tied adapter's layer is borrowed).</summary>
    public bool Owns(string adapter) => bottleneck?.Contains(adapter) ?? false;

    /// <summary>The adapter's layer at this site: its own, or the tied layer borrowed from the first block's site.</summary>
    public BottleneckLayer Adapter(string adapter) => borrowed.TryGetValue(adapter, out var layer) ? layer : bottleneck![adapter];

    /// <summary>The sublayer output plus every acting adapter's delta, each computed from the sublayer output, or from
    /// its input for a parallel adapter (several active adapters add, as LoRA deltas do); in a mixed batch each row
    /// takes its own adapter's delta.</summary>
    /// <param name="sublayerOutput">(B, T, C) what the sublayer returned.</param>
    /// <param name="sublayerInput">(B, T, C) what the sublayer was given (after the block's norm).</param>
    public override Tensor forward(Tensor sublayerOutput, Tensor sublayerInput, ForwardContext ctx)
    {
        if (bottleneck is null && borrowed.Count == 0) return sublayerOutput;
        var routing = ctx.Routing;
        if (routing.BottleneckRows is { } rows)
        {
            var present = rows.Where(r => r is not null && Has(r)).Select(r => r!).Distinct().ToList();
            if (present.Count == 0) return sublayerOutput;
            using var scope = NewDisposeScope();
            Tensor? sum = null;
            foreach (var adapter in present)
            {
                var delta = Adapter(adapter).Delta(sublayerOutput, sublayerInput, OutputProjection?.bias);
                var mask = tensor(rows.Select(r => r == adapter ? 1f : 0f).ToArray(), device: delta.device).to(delta.dtype).view(-1, 1, 1);
                sum = sum is null ? delta * mask : sum + delta * mask;
            }
            return AddOnce(sublayerOutput, sum!).MoveToOuterDisposeScope();
        }
        var acting = routing.BottleneckActive.Where(Has).ToList();
        if (acting.Count == 0) return sublayerOutput;
        using (var scope = NewDisposeScope())
        {
            Tensor? sum = null;
            foreach (var adapter in acting)
            {
                var delta = Adapter(adapter).Delta(sublayerOutput, sublayerInput, OutputProjection?.bias);
                sum = sum is null ? delta : sum + delta;
            }
            return AddOnce(sublayerOutput, sum!).MoveToOuterDisposeScope();
        }
    }

    /// <summary>Adds the deltas in their (fp32) dtype and rounds back to the model's once, as LoRA does.</summary>
    private static Tensor AddOnce(Tensor output, Tensor delta) =>
        output.dtype == delta.dtype ? output + delta : (output.to(delta.dtype) + delta).to(output.dtype);

    internal void Add(string adapter, BottleneckLayer layer)
    {
        if (bottleneck is null)
        {
            bottleneck = new BottleneckDict();
            register_module("bottleneck", bottleneck);
        }
        bottleneck.Add(adapter, layer);
    }

    /// <summary>Uses a tied adapter's layer, registered at another site, here too.</summary>
    internal void Borrow(string adapter, BottleneckLayer layer) => borrowed.Add(adapter, layer);

    internal void Remove(string adapter)
    {
        borrowed.Remove(adapter);
        bottleneck?.Remove(adapter);
    }

    /// <summary>Empty on purpose: children are registered explicitly (<c>register_module</c>), not by TorchSharp's field reflection.</summary>
    protected override void RegisterComponents()
    {
    }
}

/// <summary>Bottleneck adapters of one site, keyed by adapter name.</summary>
public sealed class BottleneckDict : nn.Module, IPeftTensors
{
    /// <summary>An empty dict; the site creates it with its first adapter.</summary>
    public BottleneckDict() : base(nameof(BottleneckDict))
    {
    }

    /// <summary>The adapter's layer; it must be registered here (see <c>Contains</c>).</summary>
    public BottleneckLayer this[string adapter] => (BottleneckLayer)_internal_submodules[adapter];

    /// <summary>True when the adapter's layer is registered here.</summary>
    public bool Contains(string adapter) => _internal_submodules.ContainsKey(adapter);

    /// <summary>Registers the layer under the adapter's name, so its tensors are <c>….bottleneck.{adapter}.linear_in.weight</c> and so on.</summary>
    public void Add(string adapter, BottleneckLayer layer) => register_module(adapter, layer);

    /// <summary>Removes and disposes the adapter's layer; a name not here is ignored.</summary>
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
