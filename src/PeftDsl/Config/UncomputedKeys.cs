using System.Text.Json;

namespace PeftDsl.Config;

/// <summary>
/// config.json keys (transformers' names) that change what a model computes. A declaration that binds none of them
/// computes the plain form; a checkpoint asking for another is refused at bind time (<see cref="ConfigJson.RefuseUncomputed"/>)
/// instead of loading strictly and computing something else. A declaration that does compute one binds the key.
/// </summary>
public static class UncomputedKeys
{
    /// <param name="Key">The key, dotted for a nested one.</param>
    /// <param name="Meaning">What a non-plain value asks for, for the message.</param>
    /// <param name="IsPlain">True when the value means the plain computation.</param>
    public sealed record Rule(string Key, string Meaning, Func<JsonElement, ConfigJson, bool> IsPlain);

    private static bool IsFalse(JsonElement v, ConfigJson _) => v.ValueKind is JsonValueKind.False or JsonValueKind.Null;

    private static bool IsNull(JsonElement v, ConfigJson _) => v.ValueKind == JsonValueKind.Null;

    private static bool IsOne(JsonElement v, ConfigJson _) => v.ValueKind == JsonValueKind.Null || (v.ValueKind == JsonValueKind.Number && v.GetDouble() == 1.0);

    private static bool IsZero(JsonElement v, ConfigJson _) => v.ValueKind == JsonValueKind.Null || (v.ValueKind == JsonValueKind.Number && v.GetDouble() == 0.0);

    private static bool IsDefaultRope(JsonElement v, ConfigJson _) => v.ValueKind == JsonValueKind.Null || (v.ValueKind == JsonValueKind.String && v.GetString() == "default");

    /// <summary>A window at least as long as every position the model accepts never masks anything; so is one that
    /// <c>use_sliding_window: false</c> switches off (Qwen2).</summary>
    private static bool WindowCoversEverything(JsonElement v, ConfigJson json)
    {
        if (v.ValueKind == JsonValueKind.Null || IsFalseKey(json, "use_sliding_window")) return true;
        var positions = json.Number("max_position_embeddings") ?? json.Number("n_positions");
        return v.ValueKind == JsonValueKind.Number && positions is { } p && v.GetDouble() >= p;
    }

    private static bool IsFalseKey(ConfigJson json, string key) =>
        json.TryGet([key], out var v, out _) && v.ValueKind == JsonValueKind.False;

    /// <summary>The keys refused unless bound or plain, with what a non-plain value would ask the model to compute:
    /// parallel residuals, sliding windows, partial or scaled rotary embeddings, soft-capping, q/k norms, ALiBi and the
    /// base model's dropout.</summary>
    public static readonly IReadOnlyList<Rule> Rules =
    [
        new("use_parallel_residual", "a parallel residual (x + attn(ln_1(x)) + mlp(ln_2(x)))", IsFalse),
        new("parallel_attn", "parallel attention and MLP (x + attn(ln(x)) + mlp(ln(x)))", IsFalse),
        new("sliding_window", "sliding-window attention shorter than the positions the model accepts", WindowCoversEverything),
        new("rotary_pct", "partial rotary embeddings (only that fraction of each head is rotated)", IsOne),
        new("partial_rotary_factor", "partial rotary embeddings (only that fraction of each head is rotated)", IsOne),
        new("rope_parameters.partial_rotary_factor", "partial rotary embeddings (only that fraction of each head is rotated)", IsOne),
        new("rope_scaling", "scaled rotary positions", IsNull),
        new("rope_parameters.rope_type", "a rotary scaling other than the default", IsDefaultRope),
        new("attn_logit_softcapping", "soft-capped attention logits", IsNull),
        new("final_logit_softcapping", "soft-capped output logits", IsNull),
        new("qk_layernorm", "normed queries and keys", IsFalse),
        new("use_qk_norm", "normed queries and keys", IsFalse),
        new("alibi", "ALiBi position biases", IsFalse),
        // transformers applies these in training; a declaration that does not place them would train another model.
        new("embd_pdrop", "dropout on the embeddings in training", IsZero),
        new("attn_pdrop", "dropout on the attention probabilities in training", IsZero),
        new("resid_pdrop", "dropout on the sublayer outputs in training", IsZero),
        new("dropout_rate", "dropout on the embeddings, attention and sublayer outputs in training", IsZero),
        new("attention_dropout", "dropout on the attention probabilities in training", IsZero),
        new("hidden_dropout", "dropout on the embeddings and sublayer outputs in training", IsZero),
    ];
}
