using PeftDsl.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftDsl.Modules;

/// <summary>
/// The base model's own dropout (GPT-2's <c>embd_pdrop</c>, <c>attn_pdrop</c> and <c>resid_pdrop</c>, T5's
/// <c>dropout_rate</c>, Llama's <c>attention_dropout</c>), where the declaration puts it (docs/dsl.md, "Dropout"). It acts
/// in training mode only, as transformers' does, so evaluation and generation stay deterministic. The root's
/// <see cref="LanguageModel.BaseDropout"/> replaces every configured rate when set (<c>--base-dropout 0</c> turns them off).
/// </summary>
public static class BaseDropout
{
    /// <summary>The rate to apply now: 0 outside training, else the root's override or the configured rate.</summary>
    /// <param name="configured">The declaration's rate, read from config.json.</param>
    /// <param name="training">The calling module's training flag.</param>
    public static double Rate(double configured, bool training, ForwardContext ctx) =>
        training ? ctx.BaseDropout ?? configured : 0.0;

    /// <summary><paramref name="x"/> with dropout at <see cref="Rate"/>; the same tensor when the rate is 0.</summary>
    public static Tensor Apply(Tensor x, double configured, bool training, ForwardContext ctx)
    {
        var p = Rate(configured, training, ctx);
        return p > 0 ? nn.functional.dropout(x, p, training: true) : x;
    }
}
