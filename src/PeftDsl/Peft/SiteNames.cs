using PeftDsl.Dsl;

namespace PeftDsl.Peft;

/// <summary>NeMo's site names. One place maps projection roles to them, so the generator only emits roles.</summary>
public static class SiteNames
{
    public const string AttentionQkv = "attention_qkv";
    /// <summary>Cross-attention query (NeMo's LORA_Q group).</summary>
    public const string AttentionQ = "attention_q";
    /// <summary>Cross-attention keys and values over the encoder output (NeMo's LORA_KV group).</summary>
    public const string AttentionKv = "attention_kv";
    public const string CrossAttentionDense = "cross_attention_dense";
    public const string CrossAttentionAdapter = "cross_attention_adapter";
    public const string AttentionDense = "attention_dense";
    public const string MlpFc1 = "mlp_fc1";
    public const string MlpFc2 = "mlp_fc2";
    public const string Ia3Key = "key_infused_adapter";
    public const string Ia3Value = "value_infused_adapter";
    public const string Ia3Mlp = "mlp_infused_adapter";
    public const string AttentionAdapter = "attention_adapter";
    public const string MlpAdapter = "mlp_adapter";
    public const string VirtualPrompt = "virtual_prompt";

    /// <summary>The site name of a projection; cross-attention's are NeMo's Q and KV groups.</summary>
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
        ProjectionRole.Gate or ProjectionRole.Up => MlpFc1,
        ProjectionRole.Down => MlpFc2,
        _ => throw new ArgumentOutOfRangeException(nameof(role), role, null),
    };
}
