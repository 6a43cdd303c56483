using PeftDsl.Errors;

namespace PeftDsl.Runtime;

/// <summary>
/// Checks that generated constructors run on values from config.json. The generator checks literal bindings at
/// compile time; these catch the same mistakes when the numbers arrive at run time, naming the config keys.
/// </summary>
public static class DslChecks
{
    /// <summary>Returns <paramref name="value"/> when it is positive (a size, a head count).</summary>
    /// <param name="key">The config key the value came from, for the message.</param>
    /// <param name="module">The DSL class reading it, for the message.</param>
    /// <exception cref="ConfigException">The value is 0 or negative.</exception>
    public static long Positive(long value, string key, string module)
    {
        if (value <= 0)
            throw new ConfigException($"{module}: {key} = {value} must be positive");
        return value;
    }

    /// <summary>While a checkpoint's keys are listed before the model is built: at most this many blocks (the
    /// checkpoint's tensor count, since every block has at least one), so a config that lies about its depth is
    /// refused at once instead of listing (or building) a hundred million blocks.</summary>
    private static readonly AsyncLocal<(long Limit, string Source)?> blockLimit = new();

    internal static IDisposable LimitBlocks(long limit, string source)
    {
        var previous = blockLimit.Value;
        blockLimit.Value = (limit, source);
        return new Restore(() => blockLimit.Value = previous);
    }

    /// <summary>A stack's block count: positive, and no more than the checkpoint being loaded can hold.</summary>
    public static long BlockCount(long value, string key, string module)
    {
        Positive(value, key, module);
        if (blockLimit.Value is { } l && value > l.Limit)
            throw new ConfigException($"{l.Source}: {key} = {value}, but the checkpoint holds only {l.Limit} tensors; the config does not describe these weights ({module})");
        return value;
    }

    private sealed class Restore(Action undo) : IDisposable
    {
        public void Dispose() => undo();
    }

    /// <summary>The head size Dim / Heads, which must divide exactly.</summary>
    public static long HeadDim(long dim, string dimKey, long heads, string headsKey, string module)
    {
        Positive(dim, dimKey, module);
        Positive(heads, headsKey, module);
        if (dim % heads != 0)
            throw new ConfigException($"{module}: {dimKey} = {dim} is not divisible by {headsKey} = {heads}");
        return dim / heads;
    }

    /// <summary>A dropout probability from config.json: in [0, 1].</summary>
    public static double Probability(double value, string key, string module)
    {
        if (!(value >= 0 && value <= 1))
            throw new ConfigException($"{module}: {key} = {value} must be a dropout probability in [0, 1]");
        return value;
    }

    /// <summary>A sliding window: 0 for none, else positive.</summary>
    public static long Window(long value, string key, string module)
    {
        if (value < 0)
            throw new ConfigException($"{module}: {key} = {value} must not be negative (0 or null: no window)");
        return value;
    }

    /// <summary>Returns a soft-capping value: finite and not negative, 0 for none.</summary>
    /// <exception cref="ConfigException">The value is negative or not finite.</exception>
    public static double Softcap(double value, string key, string module)
    {
        if (!(value >= 0) || double.IsInfinity(value))
            throw new ConfigException($"{module}: {key} = {value} must be a finite number ≥ 0 (0 or null: no soft-capping)");
        return value;
    }

    /// <summary>The attention scaling 1/√<paramref name="value"/> (Gemma's <c>query_pre_attn_scalar</c>).</summary>
    /// <exception cref="ConfigException">The value is not a positive finite number.</exception>
    public static double InverseSqrt(double value, string key, string module)
    {
        if (!(value > 0) || double.IsInfinity(value))
            throw new ConfigException($"{module}: {key} = {value} must be a positive number");
        return 1.0 / Math.Sqrt(value);
    }

    /// <summary>Whether layer <paramref name="layer"/> is a sliding-window layer, from transformers' <c>layer_types</c>.</summary>
    /// <exception cref="ConfigException">The list is too short, or names an attention type other than full or sliding.</exception>
    public static bool SlidingLayer(string[] types, int layer, string key, string module)
    {
        if (layer >= types.Length)
            throw new ConfigException($"{module}: {key} has {types.Length} entries, but layer {layer} needs one (one per layer)");
        return types[layer] switch
        {
            "sliding_attention" => true,
            "full_attention" => false,
            var other => throw new ConfigException($"{module}: {key}[{layer}] is \"{other}\"; computed are \"full_attention\" and \"sliding_attention\""),
        };
    }

    /// <summary>Returns the key/value head count for grouped-query attention: positive, and dividing <paramref name="heads"/>.</summary>
    /// <exception cref="ConfigException">The count is not positive or the query heads are not a multiple of it.</exception>
    public static long KvHeads(long heads, string headsKey, long kvHeads, string kvKey, string module)
    {
        Positive(kvHeads, kvKey, module);
        if (heads % kvHeads != 0)
            throw new ConfigException($"{module}: {headsKey} = {heads} is not a multiple of {kvKey} = {kvHeads}");
        return kvHeads;
    }
}
