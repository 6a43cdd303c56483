using PeftDsl.Errors;

namespace PeftDsl.Runtime;

/// <summary>
/// Checks that generated constructors run on values from config.json. The generator checks literal bindings at
/// compile time; these catch the same mistakes when the numbers arrive at run time, naming the config keys.
/// </summary>
public static class DslChecks
{
    public static long Positive(long value, string key, string module)
    {
        if (value <= 0)
            throw new ConfigException($"{module}: {key} = {value} must be positive");
        return value;
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

    /// <summary>Grouped-query attention needs the query heads to be a multiple of the key/value heads.</summary>
    public static long KvHeads(long heads, string headsKey, long kvHeads, string kvKey, string module)
    {
        Positive(kvHeads, kvKey, module);
        if (heads % kvHeads != 0)
            throw new ConfigException($"{module}: {headsKey} = {heads} is not a multiple of {kvKey} = {kvHeads}");
        return kvHeads;
    }
}
