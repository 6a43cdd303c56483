using PeftDsl.Modules;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace PeftDsl.Peft.Lora;

/// <summary>
/// Projections that read the same input (q/k/v, gate/up) and carry the same single active adapter: their A
/// matrices are concatenated into one [Σr, in] matmul and their B matrices into one block-diagonal [Σout, Σr]
/// matmul, whose output is split back and added with each projection's scaling. For q/k/v the LoRA part is two
/// matmuls instead of six (five matmuls in all instead of nine; host dispatches 11 instead of 12). Exact:
/// block-diagonal B keeps each projection's delta its own. Whether it pays on a GPU, where TorchSharp is bound by
/// host dispatch, is measured with the speed work (issue 11), not assumed.
/// </summary>
internal static class SharedInputLora
{
    /// <summary>The outputs of every projection, or null when fusing does not apply (then each runs alone).</summary>
    public static Tensor[]? TryProject(Tensor x, AdapterRouting routing, PeftLinear[] projections)
    {
        if (routing.IsMixed || routing.Active.Count != 1) return null;
        var adapter = routing.Active[0];
        var fused = projections.Where(p => p.Lora.CanFuse(adapter, p.training)).ToList();
        if (fused.Count < 2) return null;

        var a = cat(fused.Select(p => p.Lora.A(adapter)).ToList(), 0);                       // (Σr, in)
        var b = block_diag(fused.Select(p => p.Lora.B(adapter)).ToArray());                   // (Σout, Σr)
        var delta = F.linear(F.linear(LoraLayer.Cast(x, a), a), b);                           // (…, Σout)
        var parts = delta.split(fused.Select(p => p.OutFeatures).ToArray(), -1);

        var outputs = new Tensor[projections.Length];
        for (var i = 0; i < projections.Length; i++)
        {
            var p = projections[i];
            var index = fused.IndexOf(p);
            if (index < 0)
            {
                outputs[i] = p.forward(x, routing);
                continue;
            }
            var result = p.BaseForward(x);
            var scaling = p.Lora.Settings(adapter).Scaling;
            var part = parts[index];
            outputs[i] = result.dtype == part.dtype ? result.add(part, scaling) : (result + part * scaling).to(result.dtype);
        }
        return outputs;
    }
}
