using PeftDsl.Dsl;
using PeftDsl.Peft;
using PeftDsl.Peft.Lora;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftDsl.Modules;

/// <summary>
/// A projection declared with <c>[Projection]</c>: a frozen-able linear layer that is also a PEFT linear site.
/// The weight is always held as [out, in] so every projection takes the same <c>F.linear</c> path; a Conv1D
/// checkpoint is transposed once on load and back on save instead of on every forward. LoRA adapters attached here
/// live in its <see cref="Lora"/> layer, registered under peft's names (<c>lora_A.{adapter}.weight</c>).
/// </summary>
public sealed class PeftLinear : nn.Module<Tensor, AdapterRouting, Tensor>, ICheckpointLayout, IPeftSiteOwner
{
    private readonly long[] outputSplit;
    private readonly bool interleavedQkv;

    /// <summary>A fused Qkv projection whose output interleaves q, k and v per head group (GPT-NeoX).</summary>
    public bool InterleavedQkv => interleavedQkv;

    /// <param name="outputSplit">For fused projections, the sizes of the parts of the output (q, k, v),
    /// so IA3 key/value sites can name their columns.</param>
    /// <param name="crossAttention">The projection belongs to a cross-attention module (its site names differ).</param>
    /// <param name="interleavedQkv">A fused Qkv output ordered per head group (GPT-NeoX): keys and values are not
    /// contiguous columns, so it offers no IA3 key/value column sites (NeMo's placement refuses it).</param>
    public PeftLinear(long inFeatures, long outFeatures, bool hasBias, ProjectionRole role, int? layer,
        WeightLayout layout = WeightLayout.Linear, long[]? outputSplit = null, bool crossAttention = false, bool interleavedQkv = false)
        : base(nameof(PeftLinear))
    {
        this.interleavedQkv = interleavedQkv;
        CrossAttention = crossAttention;
        InFeatures = inFeatures;
        OutFeatures = outFeatures;
        Role = role;
        Layer = layer;
        Layout = layout;
        this.outputSplit = outputSplit ?? [outFeatures];
        weight = OwnedParameter.Of(empty(outFeatures, inFeatures));
        register_parameter("weight", weight);
        if (hasBias)
        {
            bias = OwnedParameter.Of(empty(outFeatures));
            register_parameter("bias", bias);
        }
        Lora = new LoraLayer(this);
        Ia3 = new Peft.Ia3.Ia3Layer(this);
    }

    /// <summary>The base [out, in] weight, always in <c>nn.Linear</c> layout (a Conv1D checkpoint is transposed on load);
    /// frozen when PEFT trains.</summary>
    public readonly Parameter weight;

    /// <summary>The base [out] bias, or null when the projection has none.</summary>
    public readonly Parameter? bias;

    /// <summary>Input size: the last dimension of <c>x</c>.</summary>
    public long InFeatures { get; }

    /// <summary>Output size (for a fused projection, the sum of its parts).</summary>
    public long OutFeatures { get; }

    /// <summary>The declared role; decides the NeMo site names and which IA3 sites the projection offers.</summary>
    public ProjectionRole Role { get; }

    /// <summary>The 0-based index of the block the projection belongs to, or null outside blocks; PEFT layer selection
    /// (peft's <c>layers_to_transform</c>) matches it.</summary>
    public int? Layer { get; }

    /// <summary>How the checkpoint stores <see cref="weight"/>: <c>Conv1D</c> means [in, out] on disk.</summary>
    public WeightLayout Layout { get; }

    /// <summary>True inside a cross-attention module, whose sites take NeMo's cross-attention names
    /// (<c>attention_q</c>, <c>attention_kv</c>, <c>cross_attention_dense</c>).</summary>
    public bool CrossAttention { get; }

    /// <summary>The LoRA adapters attached to this projection (none on a base model).</summary>
    public LoraLayer Lora { get; }

    /// <summary>The IA3 vectors attached to this projection (none on a base model).</summary>
    public Peft.Ia3.Ia3Layer Ia3 { get; }

    /// <param name="x">(…, in)</param>
    /// <param name="routing">Which adapters act on which rows of this call.</param>
    /// <returns>(…, out)</returns>
    public override Tensor forward(Tensor x, AdapterRouting routing) =>
        !Ia3.IsEmpty && Ia3.Acts(routing) ? Ia3.Forward(x, routing)
        : Lora.IsEmpty || routing.IsBaseOnly ? BaseForward(x) : Lora.Forward(x, routing);

    /// <summary>The base projection alone: <c>F.linear</c>, or the 4-bit matmul when the weight is quantized.</summary>
    public Tensor BaseForward(Tensor x) =>
        FourBit is { } q ? Quantization.FourBitLinear.Forward(x, q, bias) : nn.functional.linear(x, weight, bias);

    /// <summary>The base weight in 4 bits (QLoRA's base, <c>--quantize</c>), or null when <see cref="weight"/> holds it.
    /// While quantized, <see cref="weight"/> is empty (0 elements, the compute dtype).</summary>
    public Quantization.FourBitWeight? FourBit { get; private set; }

    /// <summary>Quantizes the base weight to 4 bits and frees the full-precision one, which must be frozen.</summary>
    public void QuantizeTo4Bit(Quantization.FourBitType type, bool doubleQuant)
    {
        if (FourBit is not null) throw new InvalidOperationException("the weight is already quantized");
        if (!Lora.IsEmpty || !Ia3.IsEmpty)
            throw new Errors.PeftDslException("quantize the base before adding adapters: their layers read the full-precision weight");
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();   // set_ returns a new handle on the weight: freed here, not by the GC
        FourBit = Quantization.FourBitWeight.Quantize(weight, type, doubleQuant);
        weight.set_(empty(0, dtype: weight.dtype, device: weight.device));
    }

    /// <summary>Refuses what does not yet run on a 4-bit weight, naming it.</summary>
    internal void RequireFullPrecision(string what)
    {
        if (FourBit is not null)
            throw new Errors.PeftDslException($"{what} is not supported on a 4-bit base yet (--quantize): load the model without it");
    }

    /// <summary>
    /// Projects one input through several projections (q/k/v on the same normalized input, gate/up of a gated MLP).
    /// When two or more carry the same single active LoRA adapter, their A matrices run as one matmul and their B
    /// matrices as one block-diagonal matmul (<see cref="SharedInputLora"/>); otherwise each runs alone.
    /// </summary>
    public static Tensor[] ProjectShared(Tensor x, AdapterRouting routing, params PeftLinear[] projections) =>
        (projections.Any(p => !p.Ia3.IsEmpty && p.Ia3.Acts(routing)) ? null : SharedInputLora.TryProject(x, routing, projections))
        ?? projections.Select(p => p.forward(x, routing)).ToArray();

    /// <summary>Lets a method's layer register its per-adapter containers (<c>lora_A</c>, …) under this module.</summary>
    internal void RegisterPeftModule(string name, nn.Module module) => register_module(name, module);

    internal void UnregisterPeftModule(string name) => _internal_submodules.Remove(name);

    /// <summary>True only for <c>weight</c> of a <c>Conv1D</c> projection, which the checkpoint stores [in, out].</summary>
    public bool IsTransposedInCheckpoint(string parameterName) =>
        Layout == WeightLayout.Conv1D && parameterName == "weight";

    /// <summary>Submodules are registered explicitly (adapter containers under peft's names), not by field.</summary>
    protected override void RegisterComponents()
    {
    }

    /// <summary>The PEFT sites this projection offers at <paramref name="path"/>: always a linear (LoRA) site, plus the
    /// IA3 sites its role implies (key/value outputs, or column slices of a fused projection; the input of <c>Down</c>).</summary>
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
            case ProjectionRole.Qkv when !interleavedQkv:
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
