namespace PeftDsl.Dsl;

/// <summary>
/// Marks a partial record as a model's hyper-parameters. The generator emits <c>FromJson</c>/<c>Load</c>,
/// which bind every <see cref="ConfigKeyAttribute"/> property from the checkpoint's <c>config.json</c>.
/// A <c>required</c> property must be present; any other keeps its initializer when the key is absent or null.
/// </summary>
[AttributeUsage(AttributeTargets.Class, Inherited = false)]
public sealed class ModelConfigAttribute : Attribute;

/// <summary>
/// Binds a property to a <c>config.json</c> key. Dotted keys reach into objects
/// (<c>rope_parameters.rope_theta</c>); several keys are tried in order, so one record reads both old and new
/// transformers layouts.
/// </summary>
[AttributeUsage(AttributeTargets.Property, Inherited = false)]
public sealed class ConfigKeyAttribute(params string[] keys) : Attribute
{
    /// <summary>The <c>config.json</c> keys to try, in order (dotted for nested ones); the first present, non-null key
    /// binds, and two present keys that disagree are refused.</summary>
    public string[] Keys { get; } = keys;

    /// <summary>
    /// The values of this key the declaration computes (<c>Computes = new object[] { "default" }</c>; <c>null</c> in
    /// the list accepts an absent key). Any other value is refused when config.json is bound, naming the file, the
    /// key, the value and the property, so a checkpoint never runs through math it does not mean.
    /// </summary>
    public object?[]? Computes { get; set; }
}
