using PeftDsl.Errors;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftDsl.Modules;

/// <summary>
/// Rotary position embedding (RoPE) in the "rotate half" convention of transformers' Llama and GPT-NeoX. It has no
/// weights (transformers keeps <c>inv_freq</c> as a non-persistent buffer), so it is not a registered module.
/// Partial rotary (GPT-NeoX's <c>rotary_pct</c>, <c>partial_rotary_factor</c>) rotates the first
/// <see cref="RotaryDim"/> dimensions of each head and passes the rest through. The scaled <c>rope_type</c>s follow
/// transformers' <c>modeling_rope_utils</c>: "llama3" (<c>_compute_llama3_parameters</c>), "linear" (positions divided
/// by the factor) and "longrope" (Phi-3.5/Phi-4-mini: per-frequency short or long factors and an attention factor on
/// cos and sin; "su" is its old name). "dynamic" and "yarn" are refused by name.
/// </summary>
public sealed class RotaryEmbedding
{
    /// <summary>The scaling schemes this class computes.</summary>
    public static readonly string[] RopeTypes = ["default", "llama3", "linear", "longrope", "su"];

    private readonly float[] invFreq;
    // longrope: the frequencies for passes that reach past original_max_position_embeddings, and that bound.
    private readonly float[]? longInvFreq;
    private readonly long longFrom;
    private readonly double attentionFactor = 1.0;
    // The frequencies on the device the last forward ran on: built once, not copied from the host every forward.
    private Tensor? invFreqOnDevice;
    private Tensor? longInvFreqOnDevice;

    /// <param name="fraction">The rotated share of the head (1 for full rotary).</param>
    /// <param name="scaling">The scaled rope types' parameters (llama3, linear, longrope); null for none.</param>
    /// <param name="thetaKey">The config key of <paramref name="theta"/>, for the message when it is not positive.</param>
    public RotaryEmbedding(long headDim, double theta, string ropeType, string source, double fraction = 1.0, RopeScaling? scaling = null,
        string thetaKey = "rope_theta")
    {
        if (Array.IndexOf(RopeTypes, ropeType) < 0)
            throw new ConfigException($"{source}: rope_type '{ropeType}' is not supported (supported: {string.Join(", ", RopeTypes)})" +
                                      (ropeType is "dynamic" or "yarn" ? $"; '{ropeType}' is not implemented" : ""));
        if (!(fraction > 0 && fraction <= 1))
            throw new ConfigException($"{source}: the rotary fraction (rotary_pct / partial_rotary_factor) must be in (0, 1], got {fraction}");
        // transformers: int(head_dim * partial_rotary_factor).
        var rotaryDim = (long)(headDim * fraction);
        if (headDim <= 0 || rotaryDim <= 0 || rotaryDim % 2 != 0)
            throw new ConfigException($"{source}: rotary size {rotaryDim} (head size {headDim} × fraction {fraction}) must be a positive even number");
        if (!(theta > 0)) throw new ConfigException($"{source}: {thetaKey} must be positive, got {theta}");
        HeadDim = headDim;
        RotaryDim = rotaryDim;
        // In fp32 torch ops, as transformers computes its inv_freq buffer, so that the tables agree bit for bit.
        using var scope = NewDisposeScope();
        var exponents = arange(0, rotaryDim, 2, dtype: ScalarType.Float32) / rotaryDim;
        var inv = pow(theta, exponents).reciprocal();   // (rd/2)
        switch (ropeType)
        {
            case "llama3":
                inv = Llama3(inv, scaling, source);
                break;
            case "linear":
                if (scaling is not { Factor: > 0 and var factor } || !double.IsFinite(factor))
                    throw new ConfigException($"{source}: rope_type 'linear' needs a positive factor, got {scaling?.Factor ?? 0}");
                inv = inv / factor;
                break;
            case "longrope" or "su":
                var (shortFactors, longFactors, original, attention) = LongRope(scaling, rotaryDim, source);
                inv = (tensor(shortFactors, dtype: ScalarType.Float32) * pow(theta, exponents)).reciprocal();
                longInvFreq = (tensor(longFactors, dtype: ScalarType.Float32) * pow(theta, exponents)).reciprocal().data<float>().ToArray();
                longFrom = original;
                attentionFactor = attention;
                break;
        }
        invFreq = inv.data<float>().ToArray();
    }

    /// <summary>longrope's checked parameters: the short and long factors (one per rotated pair), the original
    /// context past which the long ones apply, and the attention factor (transformers' default
    /// √(1 + ln(factor) / ln(original)), factor = max_position_embeddings / original, or 1 when the factor is ≤ 1).</summary>
    private static (double[] Short, double[] Long, long Original, double Attention) LongRope(RopeScaling? scaling, long rotaryDim, string source)
    {
        if (scaling is not { ShortFactor: { Length: > 0 } shortFactors, LongFactor: { Length: > 0 } longFactors } s)
            throw new ConfigException($"{source}: rope_type 'longrope' needs short_factor and long_factor");
        if (shortFactors.Length != rotaryDim / 2 || longFactors.Length != rotaryDim / 2)
            throw new ConfigException($"{source}: longrope's short_factor has {shortFactors.Length} values and long_factor {longFactors.Length}; " +
                                      $"both need one per rotated pair, {rotaryDim / 2}");
        if (shortFactors.Concat(longFactors).Any(f => !(f > 0) || !double.IsFinite(f)))
            throw new ConfigException($"{source}: longrope's short_factor and long_factor must be positive numbers");
        if (!(s.OriginalMaxPositions >= 1) || s.OriginalMaxPositions != Math.Floor(s.OriginalMaxPositions))
            throw new ConfigException($"{source}: rope_type 'longrope' needs original_max_position_embeddings, a positive integer (got {s.OriginalMaxPositions})");
        var factor = s.Factor > 0 ? s.Factor : s.MaxPositions > 0 ? s.MaxPositions / s.OriginalMaxPositions : 0;
        if (!(factor > 0))
            throw new ConfigException($"{source}: rope_type 'longrope' needs a factor or max_position_embeddings to derive its attention factor");
        var attention = s.AttentionFactor > 0 ? s.AttentionFactor
            : factor <= 1.0 ? 1.0 : Math.Sqrt(1 + Math.Log(factor) / Math.Log(s.OriginalMaxPositions));
        return (shortFactors, longFactors, (long)s.OriginalMaxPositions, attention);
    }

    /// <summary>longrope's original context: a pass reaching past it uses the long factors; null for other rope types.</summary>
    public long? LongFactorsFrom => longInvFreq is null ? null : longFrom;

    /// <summary>The full head size the tables were built for; attention layers check that theirs is the same.</summary>
    public long HeadDim { get; }

    /// <summary>The rotated leading dimensions of each head (the rest pass through).</summary>
    public long RotaryDim { get; }

    /// <summary>Llama 3.1's frequency rescaling (transformers' <c>_compute_llama3_parameters</c>): wavelengths longer
    /// than original/low_freq_factor are slowed by the factor, shorter than original/high_freq_factor kept, and a
    /// smooth blend between.</summary>
    private static Tensor Llama3(Tensor inv, RopeScaling? scaling, string source)
    {
        if (scaling is not { } s)
            throw new ConfigException($"{source}: rope_type 'llama3' needs factor, low_freq_factor, high_freq_factor and original_max_position_embeddings");
        if (!(s.Factor > 0) || !(s.LowFreqFactor > 0) || !(s.HighFreqFactor > s.LowFreqFactor) || !(s.OriginalMaxPositions > 0))
            throw new ConfigException($"{source}: rope_type 'llama3' needs factor > 0, 0 < low_freq_factor < high_freq_factor and " +
                                      $"original_max_position_embeddings > 0; got factor {s.Factor}, low_freq_factor {s.LowFreqFactor}, " +
                                      $"high_freq_factor {s.HighFreqFactor}, original_max_position_embeddings {s.OriginalMaxPositions} (a missing key reads as 0)");
        var lowFreqWavelen = s.OriginalMaxPositions / s.LowFreqFactor;
        var highFreqWavelen = s.OriginalMaxPositions / s.HighFreqFactor;
        var wavelen = 2 * Math.PI / inv;
        var slowed = where(wavelen > lowFreqWavelen, inv / s.Factor, inv);
        var smooth = (s.OriginalMaxPositions / wavelen - s.LowFreqFactor) / (s.HighFreqFactor - s.LowFreqFactor);
        var blended = (1 - smooth) * slowed / s.Factor + smooth * slowed;
        var medium = (wavelen < highFreqWavelen).logical_not() & (wavelen > lowFreqWavelen).logical_not();
        return where(medium, blended, slowed);
    }

    /// <summary>cos and signed sin tables (…, rotary dim) for <paramref name="positions"/> of any shape, computed in
    /// fp32 and cast to <paramref name="dtype"/>. The sin table's first half is negated (<c>[−sin, sin]</c>), so that
    /// <see cref="Apply"/> rotates with a roll instead of negating and concatenating halves in every layer. longrope
    /// uses its long factors for a pass whose last position reaches past the original context, as transformers'
    /// <c>longrope_frequency_update</c> does, and scales both tables by its attention factor.</summary>
    public (Tensor Cos, Tensor SignedSin) Tables(Tensor positions, ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        var useLong = longInvFreq is not null && positions.numel() > 0 && positions.max().item<long>() + 1 > longFrom;
        var inv = useLong ? OnDevice(ref longInvFreqOnDevice, longInvFreq!, positions) : OnDevice(ref invFreqOnDevice, invFreq, positions);   // (rd/2)
        var freqs = positions.to(ScalarType.Float32).unsqueeze(-1) * inv;                       // (…, rd/2)
        var (cos, sin) = (freqs.cos(), freqs.sin());
        if (attentionFactor != 1.0) (cos, sin) = (cos * attentionFactor, sin * attentionFactor);
        return (cat([cos, cos], dim: -1).to(dtype).MoveToOuterDisposeScope(), cat([-sin, sin], dim: -1).to(dtype).MoveToOuterDisposeScope());
    }

    private static Tensor OnDevice(ref Tensor? cached, float[] values, Tensor positions)
    {
        if (cached is null || cached.device_type != positions.device_type || cached.device_index != positions.device_index)
        {
            cached?.Dispose();
            cached = tensor(values, device: positions.device).DetachFromDisposeScope();
        }
        return cached;
    }

    /// <summary>Rotates the first (rotary dim) features of (B, h, T, hd) queries or keys by tables that broadcast to
    /// them ((B or 1, 1, T, rotary dim)); the remaining features pass through. transformers' x·cos + rotate_half(x)·sin,
    /// where rotate_half(x) = [−x₂, x₁] equals roll(x, rd/2)·[−1, 1]: the sign lives in <paramref name="signedSin"/>,
    /// so a rotation is three ops (roll, mul, addcmul) instead of seven, for queries and keys in every layer.</summary>
    public static Tensor Apply(Tensor x, Tensor cos, Tensor signedSin)
    {
        using var scope = NewDisposeScope();
        var rd = cos.shape[^1];
        var rot = rd == x.shape[^1] ? x : x.narrow(-1, 0, rd);
        var rotated = (rot * cos).addcmul(rot.roll(rd / 2, -1), signedSin, 1);
        return (rd == x.shape[^1] ? rotated : cat([rotated, x.narrow(-1, rd, x.shape[^1] - rd)], dim: -1)).MoveToOuterDisposeScope();
    }
}

/// <summary>The parameters of a scaled <c>rope_type</c>, as config.json's <c>rope_scaling</c> / <c>rope_parameters</c>
/// name them; a number left 0 (a list left null) was not given. Which ones a type needs is checked when the
/// <see cref="RotaryEmbedding"/> is built.</summary>
public sealed record RopeScaling
{
    /// <summary><c>factor</c> (llama3, linear; longrope's is derived from the contexts when absent).</summary>
    public double Factor { get; init; }
    /// <summary><c>low_freq_factor</c> (llama3).</summary>
    public double LowFreqFactor { get; init; }
    /// <summary><c>high_freq_factor</c> (llama3).</summary>
    public double HighFreqFactor { get; init; }
    /// <summary><c>original_max_position_embeddings</c> (llama3, longrope).</summary>
    public double OriginalMaxPositions { get; init; }
    /// <summary><c>max_position_embeddings</c>: longrope's factor is this over the original when <c>factor</c> is absent.</summary>
    public double MaxPositions { get; init; }
    /// <summary><c>short_factor</c> (longrope): one per rotated pair, within the original context.</summary>
    public double[]? ShortFactor { get; init; }
    /// <summary><c>long_factor</c> (longrope): one per rotated pair, past the original context.</summary>
    public double[]? LongFactor { get; init; }
    /// <summary><c>attention_factor</c> (longrope): multiplies cos and sin; derived when absent.</summary>
    public double AttentionFactor { get; init; }
}
