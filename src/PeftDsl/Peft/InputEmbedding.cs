using PeftDsl.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftDsl.Peft;

/// <summary>The token embedding the virtual-prompt site follows: where prompt learning prepends virtual tokens and
/// where LoRA's trainable tokens and <c>modules_to_save</c> find the input embedding.</summary>
internal static class InputEmbedding
{
    /// <summary>The site's module path and table; null when the model declares no virtual-prompt site, a null table
    /// when the site's module is not a token embedding.</summary>
    public static (string Path, Modules.Embedding? Table)? Find(nn.Module model)
    {
        var site = model.Sites().FirstOrDefault(s => s.Kind == SiteKind.VirtualPrompt);
        if (site is null) return null;
        var modules = Checkpoints.CheckpointLayout.ModulesWithRoot(model).ToList();
        if (modules.FirstOrDefault(m => m.Path == site.ModulePath).Module is Modules.Embedding registered) return (site.ModulePath, registered);
        // A shared embedding (T5's encoder.embed_tokens is the root's `shared`) is registered once, under the root's
        // name; the stack keeps it in the field the generator names after the checkpoint segment.
        var dot = site.ModulePath.LastIndexOf('.');
        var owner = modules.FirstOrDefault(m => m.Path == (dot < 0 ? "" : site.ModulePath[..dot])).Module;
        return (site.ModulePath, owner?.GetType().GetField(site.ModulePath[(dot + 1)..])?.GetValue(owner) as Modules.Embedding);
    }
}
