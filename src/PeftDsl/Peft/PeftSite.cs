namespace PeftDsl.Peft;

/// <summary>The four kinds of PEFT injection point.</summary>
public enum SiteKind
{
    /// <summary>A linear layer that LoRA (and peft-style IA3) can wrap.</summary>
    Linear,
    /// <summary>A bottleneck adapter after a sublayer, before the residual add.</summary>
    Adapter,
    /// <summary>An IA3 scaling vector on keys, values or the MLP activation.</summary>
    Ia3,
    /// <summary>The input embedding, where prompt learning prepends virtual tokens.</summary>
    VirtualPrompt,
}

/// <summary>
/// One PEFT injection point in a built model.
/// </summary>
/// <param name="Name">NeMo's site name (<c>attention_qkv</c>, <c>mlp_fc2</c>, <c>key_infused_adapter</c>, …).</param>
/// <param name="ModulePath">The Hugging Face module path (<c>transformer.h.0.attn.c_attn</c>), which peft's
/// <c>target_modules</c> match by exact name or by <c>.suffix</c>.</param>
/// <param name="Layer">The block index, or null outside the blocks.</param>
/// <param name="Slice">For IA3 on a fused projection: the output columns the vector scales (start, length).</param>
public sealed record PeftSite(SiteKind Kind, string Name, string ModulePath, int? Layer, (long Start, long Length)? Slice = null)
{
    /// <summary>peft's <c>target_modules</c> rule, extended with NeMo names: <paramref name="target"/> selects the
    /// site if it is the NeMo name, the full module path, or a dot-separated suffix of the path.</summary>
    public bool Matches(string target) =>
        target == Name || target == ModulePath || ModulePath.EndsWith("." + target, StringComparison.Ordinal)
        || (SiteNames.Aliases.TryGetValue(target, out var canonical) && canonical == Name);

    /// <summary>Kind, site name and module path, with the slice if any (<c>Ia3 key_infused_adapter transformer.h.0.attn.c_attn [768:1536]</c>).</summary>
    public override string ToString() =>
        $"{Kind} {Name} {ModulePath}" + (Slice is { } s ? $" [{s.Start}:{s.Start + s.Length}]" : "");
}

/// <summary>A module that holds PEFT sites; <c>Sites(path)</c> gets the module's own path in the model.</summary>
public interface IPeftSiteOwner
{
    /// <summary>The module's PEFT sites.</summary>
    /// <param name="path">The module's own path in the model (<c>transformer.h.0.attn.c_attn</c>), which the sites carry as <c>ModulePath</c>.</param>
    IEnumerable<PeftSite> Sites(string path);
}
