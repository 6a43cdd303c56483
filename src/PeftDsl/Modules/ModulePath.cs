namespace PeftDsl.Modules;

/// <summary>Dotted module paths, as state-dict keys spell them.</summary>
public static class ModulePath
{
    /// <summary>A child's path; the root's path is empty, so its children have no leading dot.</summary>
    public static string Join(string path, string name) => path.Length == 0 ? name : path + "." + name;
}
