using PeftDsl.Errors;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftDsl.Modules;

/// <summary>
/// Rotary position embedding (RoPE) in the "rotate half" convention of transformers' Llama and GPT-NeoX. It has no
/// weights (transformers keeps <c>inv_freq</c> as a non-persistent buffer), so it is not a registered module.
/// Partial rotary (GPT-NeoX's <c>rotary_pct</c>, <c>partial_rotary_factor</c>) rotates the first
/// <see cref="RotaryDim"/> dimensions of each head and passes the rest through. <c>rope_type</c> "llama3" rescales
/// the frequencies as transformers' <c>_compute_llama3_parameters</c> does.
/// </summary>
public sealed class RotaryEmbedding
{
    /// <summary>The scaling schemes this class computes.</summary>
    public static readonly string[] RopeTypes = ["default", "llama3"];

    private readonly float[] invFreq;
    // The frequencies on the device the last forward ran on: built once, not copied from the host every forward.
    private Tensor? invFreqOnDevice;

    /// <param name="fraction">The rotated share of the head (1 for full rotary).</param>
    /// <param name="scaling">llama3: factor, low_freq_factor, high_freq_factor, original_max_position_embeddings.</param>
    public RotaryEmbedding(long headDim, double theta, string ropeType, string source, double fraction = 1.0,
        (double Factor, double LowFreqFactor, double HighFreqFactor, double OriginalMaxPositions)? scaling = null)
    {
        if (Array.IndexOf(RopeTypes, ropeType) < 0)
            throw new ConfigException($"{source}: rope_type '{ropeType}' is not supported (supported: {string.Join(", ", RopeTypes)})");
        if (!(fraction > 0 && fraction <= 1))
            throw new ConfigException($"{source}: the rotary fraction (rotary_pct / partial_rotary_factor) must be in (0, 1], got {fraction}");
        // transformers: int(head_dim * partial_rotary_factor).
        var rotaryDim = (long)(headDim * fraction);
        if (headDim <= 0 || rotaryDim <= 0 || rotaryDim % 2 != 0)
            throw new ConfigException($"{source}: rotary size {rotaryDim} (head size {headDim} × fraction {fraction}) must be a positive even number");
        if (!(theta > 0)) throw new ConfigException($"{source}: rope_theta must be positive, got {theta}");
        HeadDim = headDim;
        RotaryDim = rotaryDim;
        // In fp32 torch ops, as transformers computes its inv_freq buffer, so that the tables agree bit for bit.
        using var scope = NewDisposeScope();
        var inv = pow(theta, arange(0, rotaryDim, 2, dtype: ScalarType.Float32) / rotaryDim).reciprocal();   // (rd/2)
        if (ropeType == "llama3") inv = Llama3(inv, scaling, source);
        invFreq = inv.data<float>().ToArray();
    }

    /// <summary>The full head size the tables were built for; attention layers check that theirs is the same.</summary>
    public long HeadDim { get; }

    /// <summary>The rotated leading dimensions of each head (the rest pass through).</summary>
    public long RotaryDim { get; }

    /// <summary>Llama 3.1's frequency rescaling (transformers' <c>_compute_llama3_parameters</c>): wavelengths longer
    /// than original/low_freq_factor are slowed by the factor, shorter than original/high_freq_factor kept, and a
    /// smooth blend between.</summary>
    private static Tensor Llama3(Tensor inv, (double Factor, double LowFreqFactor, double HighFreqFactor, double OriginalMaxPositions)? scaling, string source)
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
    /// <see cref="Apply"/> rotates with a roll instead of negating and concatenating halves in every layer.</summary>
    public (Tensor Cos, Tensor SignedSin) Tables(Tensor positions, ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        if (invFreqOnDevice is null || invFreqOnDevice.device_type != positions.device_type || invFreqOnDevice.device_index != positions.device_index)
        {
            invFreqOnDevice?.Dispose();
            invFreqOnDevice = tensor(invFreq, device: positions.device).DetachFromDisposeScope();
        }
        var inv = invFreqOnDevice;                                                              // (rd/2)
        var freqs = positions.to(ScalarType.Float32).unsqueeze(-1) * inv;                       // (…, rd/2)
        var (cos, sin) = (freqs.cos(), freqs.sin());
        return (cat([cos, cos], dim: -1).to(dtype).MoveToOuterDisposeScope(), cat([-sin, sin], dim: -1).to(dtype).MoveToOuterDisposeScope());
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
