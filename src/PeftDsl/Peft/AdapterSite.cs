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

    public AdapterSite(string name, int layer) : base(nameof(AdapterSite))
    {
        Name = name;
        Layer = layer;
    }

    public string Name { get; }

    public int Layer { get; }

    public bool Has(string adapter) => Owns(adapter) || borrowed.ContainsKey(adapter);

    /// <summary>The adapter's layer is registered here (false where a tied adapter's layer is borrowed).</summary>
    public bool Owns(string adapter) => bottleneck?.Contains(adapter) ?? false;

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
                var delta = Adapter(adapter).Delta(sublayerOutput, sublayerInput);
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
                var delta = Adapter(adapter).Delta(sublayerOutput, sublayerInput);
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

    protected override void RegisterComponents()
    {
    }
}

/// <summary>Bottleneck adapters of one site, keyed by adapter name.</summary>
public sealed class BottleneckDict : nn.Module, IPeftTensors
{
    public BottleneckDict() : base(nameof(BottleneckDict))
    {
    }

    public BottleneckLayer this[string adapter] => (BottleneckLayer)_internal_submodules[adapter];

    public bool Contains(string adapter) => _internal_submodules.ContainsKey(adapter);

    public void Add(string adapter, BottleneckLayer layer) => register_module(adapter, layer);

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
