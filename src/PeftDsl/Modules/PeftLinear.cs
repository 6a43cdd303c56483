using PeftDsl.Dsl;
using PeftDsl.Peft;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftDsl.Modules;

/// <summary>
/// A projection declared with <c>[Projection]</c>: a frozen-able linear layer that is also a PEFT linear site.
/// The weight is always held as [out, in] so every projection takes the same <c>F.linear</c> path; a Conv1D
/// checkpoint is transposed once on load and back on save instead of on every forward.
/// </summary>
public sealed class PeftLinear : nn.Module<Tensor, Tensor>, ICheckpointLayout, IPeftSiteOwner
{
    private readonly long[] outputSplit;

    /// <param name="outputSplit">For fused projections, the sizes of the parts of the output (q, k, v),
    /// so IA3 key/value sites can name their columns.</param>
    /// <param name="crossAttention">The projection belongs to a cross-attention module (its site names differ).</param>
    public PeftLinear(long inFeatures, long outFeatures, bool hasBias, ProjectionRole role, int? layer,
        WeightLayout layout = WeightLayout.Linear, long[]? outputSplit = null, bool crossAttention = false)
        : base(nameof(PeftLinear))
    {
        CrossAttention = crossAttention;
        InFeatures = inFeatures;
        OutFeatures = outFeatures;
        Role = role;
        Layer = layer;
        Layout = layout;
        this.outputSplit = outputSplit ?? [outFeatures];
        weight = new Parameter(empty(outFeatures, inFeatures));
        register_parameter("weight", weight);
        if (hasBias)
        {
            bias = new Parameter(empty(outFeatures));
            register_parameter("bias", bias);
        }
    }

    public readonly Parameter weight;

    public readonly Parameter? bias;

    public long InFeatures { get; }

    public long OutFeatures { get; }

    public ProjectionRole Role { get; }

    public int? Layer { get; }

    public WeightLayout Layout { get; }

    public bool CrossAttention { get; }

    public override Tensor forward(Tensor x) => nn.functional.linear(x, weight, bias);

    public bool IsTransposedInCheckpoint(string parameterName) =>
        Layout == WeightLayout.Conv1D && parameterName == "weight";

    public IEnumerable<PeftSite> Sites(string path)
    {
        yield return new PeftSite(SiteKind.Linear, SiteNames.ForRole(Role, CrossAttention), path, Layer);
        switch (Role)
        {
            case ProjectionRole.Key:
                yield return new PeftSite(SiteKind.Ia3, SiteNames.Ia3Key, path, Layer);
                break;
            case ProjectionRole.Value:
                yield return new PeftSite(SiteKind.Ia3, SiteNames.Ia3Value, path, Layer);
                break;
            case ProjectionRole.KeyValue:
                yield return new PeftSite(SiteKind.Ia3, SiteNames.Ia3Key, path, Layer, (0, outputSplit[0]));
                yield return new PeftSite(SiteKind.Ia3, SiteNames.Ia3Value, path, Layer, (outputSplit[0], outputSplit[1]));
                break;
            case ProjectionRole.Qkv:
                yield return new PeftSite(SiteKind.Ia3, SiteNames.Ia3Key, path, Layer, (outputSplit[0], outputSplit[1]));
                yield return new PeftSite(SiteKind.Ia3, SiteNames.Ia3Value, path, Layer,
                    (outputSplit[0] + outputSplit[1], outputSplit[2]));
                break;
            case ProjectionRole.Down:
                // IA3 scales the MLP activation, which is this projection's input.
                yield return new PeftSite(SiteKind.Ia3, SiteNames.Ia3Mlp, path, Layer);
                break;
        }
    }
}
