using PeftDsl.Dsl;

namespace PeftDsl.Peft;

/// <summary>NeMo's site names. One place maps projection roles to them, so the generator only emits roles.</summary>
public static class SiteNames
{
    /// <summary>Self-attention's query/key/value projection(s) (NeMo's LORA_KQV group; GPT-2's <c>c_attn</c>, Llama's <c>q_proj</c>/<c>k_proj</c>/<c>v_proj</c>).</summary>
    public const string AttentionQkv = "attention_qkv";
    /// <summary>Cross-attention query (NeMo's LORA_Q group).</summary>
    public const string AttentionQ = "attention_q";
    /// <summary>Cross-attention keys and values over the encoder output (NeMo's LORA_KV group).</summary>
    public const string AttentionKv = "attention_kv";
    /// <summary>Cross-attention's output projection.</summary>
    public const string CrossAttentionDense = "cross_attention_dense";
    /// <summary>The bottleneck adapter site after the cross-attention sublayer, before the residual add.</summary>
    public const string CrossAttentionAdapter = "cross_attention_adapter";
    /// <summary>Self-attention's output projection (GPT-2's <c>attn.c_proj</c>, Llama's <c>o_proj</c>).</summary>
    public const string AttentionDense = "attention_dense";
    /// <summary>The MLP's input projection(s), up and (gated MLP) gate (GPT-2's <c>c_fc</c>, Llama's <c>gate_proj</c>/<c>up_proj</c>).</summary>
    public const string MlpFc1 = "mlp_fc1";
    /// <summary>The MLP's output (down) projection (GPT-2's <c>mlp.c_proj</c>, Llama's <c>down_proj</c>).</summary>
    public const string MlpFc2 = "mlp_fc2";
    /// <summary>The IA3 site that scales the attention keys, after the QKV split.</summary>
    public const string Ia3Key = "key_infused_adapter";
    /// <summary>The IA3 site that scales the attention values, after the QKV split.</summary>
    public const string Ia3Value = "value_infused_adapter";
    /// <summary>The IA3 site that scales the MLP activation, the down projection's input.</summary>
    public const string Ia3Mlp = "mlp_infused_adapter";
    /// <summary>The bottleneck adapter site after the self-attention sublayer, before the residual add.</summary>
    public const string AttentionAdapter = "attention_adapter";
    /// <summary>The bottleneck adapter site after the MLP sublayer, before the residual add.</summary>
    public const string MlpAdapter = "mlp_adapter";
    /// <summary>The input-embedding site where prompt learning writes its virtual tokens.</summary>
    public const string VirtualPrompt = "virtual_prompt";

    /// <summary>NeMo's group and adapter names for the attention linear sites, accepted wherever a site name is.</summary>
    public static readonly IReadOnlyDictionary<string, string> Aliases = new Dictionary<string, string>
    {
        ["LORA_KQV"] = AttentionQkv,
        ["lora_kqv_adapter"] = AttentionQkv,
        ["LORA_KV"] = AttentionKv,
        ["lora_kv_adapter"] = AttentionKv,
        ["LORA_Q"] = AttentionQ,
        ["lora_q_adapter"] = AttentionQ,
    };

    /// <summary>The site name of a projection role; with <paramref name="crossAttention"/>, cross-attention's names (NeMo's Q
    /// and KV groups, <c>cross_attention_dense</c>).</summary>
    public static string ForRole(ProjectionRole role, bool crossAttention = false) => crossAttention
        ? role switch
        {
            ProjectionRole.Query => AttentionQ,
            ProjectionRole.Key or ProjectionRole.Value or ProjectionRole.KeyValue => AttentionKv,
            ProjectionRole.Output => CrossAttentionDense,
            _ => throw new ArgumentOutOfRangeException(nameof(role), role, "not a cross-attention role"),
        }
        : role switch
    {
        ProjectionRole.Qkv or ProjectionRole.Query or ProjectionRole.Key or ProjectionRole.Value
            or ProjectionRole.KeyValue => AttentionQkv,
        ProjectionRole.Output => AttentionDense,
        ProjectionRole.Gate or ProjectionRole.Up or ProjectionRole.GateUp => MlpFc1,
        ProjectionRole.Down => MlpFc2,
        _ => throw new ArgumentOutOfRangeException(nameof(role), role, null),
    };
}
