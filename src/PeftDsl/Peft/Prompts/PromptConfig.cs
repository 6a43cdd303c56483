using PeftDsl.Errors;

namespace PeftDsl.Peft.Prompts;

/// <summary>The three prompt-learning methods, with peft's <c>peft_type</c> names.</summary>
public enum PromptMethod
{
    /// <summary>PROMPT_TUNING: the virtual token embeddings are the parameters.</summary>
    PromptTuning,
    /// <summary>P_TUNING: an encoder (MLP or LSTM) produces the virtual token embeddings.</summary>
    PTuning,
    /// <summary>PREFIX_TUNING: keys and values for every layer, read as past keys and values.</summary>
    PrefixTuning,
}

/// <summary>peft's <c>prompt_tuning_init</c>.</summary>
public enum PromptInit
{
    /// <summary>N(0, 1), as <c>torch.nn.Embedding</c> starts.</summary>
    Random,
    /// <summary>The token embeddings of a tokenized text, repeated or cut to the number of virtual tokens.</summary>
    Text,
    /// <summary>Token embeddings of vocabulary rows drawn at random.</summary>
    SampleVocab,
}

/// <summary>The P-tuning encoder: peft's MLP and LSTM, and NeMo's two-layer MLP with GeLU.</summary>
public enum PromptEncoderType
{
    /// <summary>peft: Linear, ReLU, Linear, ReLU, Linear.</summary>
    Mlp,
    /// <summary>peft: a bidirectional LSTM, then Linear, ReLU, Linear.</summary>
    Lstm,
    /// <summary>NeMo: Linear, GeLU, Linear.</summary>
    NemoMlp,
}

/// <summary>
/// One prompt-learning task's configuration, with peft's fields and defaults (<c>PromptTuningConfig</c>,
/// <c>PromptEncoderConfig</c>, <c>PrefixTuningConfig</c>). The model geometry fields (<see cref="TokenDim"/>,
/// <see cref="NumLayers"/>, <see cref="NumAttentionHeads"/>, <see cref="NumTransformerSubmodules"/>) are filled from
/// the model when the task is added, as peft fills them; a loaded file's values are checked against the model.
/// </summary>
public sealed record PromptConfig
{
    /// <summary>Prompt tuning, P-tuning or prefix tuning (the file's <c>peft_type</c>).</summary>
    public PromptMethod Method { get; init; } = PromptMethod.PromptTuning;

    /// <summary>Virtual tokens prepended to each input (per transformer submodule).</summary>
    public int NumVirtualTokens { get; init; } = 20;

    /// <summary>Hidden size of the prompt rows; for prefix tuning, of the keys and values (heads × head size).</summary>
    public long TokenDim { get; init; }

    /// <summary>1 for decoder-only models; 2 for encoder-decoder models, as peft writes it (a table of 2 ×
    /// <see cref="NumVirtualTokens"/> rows, of which prompt tuning and P-tuning read only the first half, in the encoder),
    /// or 1 there for NeMo's encoder-only table. 0 until added: the model fills it in (2 on an encoder-decoder).</summary>
    public int NumTransformerSubmodules { get; init; }

    /// <summary>Self-attention layers (prefix tuning: one key/value pair per layer).</summary>
    public int NumLayers { get; init; }

    /// <summary>Key/value heads (prefix tuning).</summary>
    public int NumAttentionHeads { get; init; }

    /// <summary>How a prompt-tuning table starts (peft's <c>prompt_tuning_init</c>); the other methods start at random.</summary>
    public PromptInit Init { get; init; } = PromptInit.Random;

    /// <summary>The text for <see cref="PromptInit.Text"/>.</summary>
    public string? InitText { get; init; }

    /// <summary>peft's <c>tokenizer_name_or_path</c>, kept for the file.</summary>
    public string? TokenizerNameOrPath { get; init; }

    /// <summary>P-tuning's encoder: peft's MLP or LSTM (<c>encoder_reparameterization_type</c>), or NeMo's MLP.</summary>
    public PromptEncoderType EncoderType { get; init; } = PromptEncoderType.Mlp;

    /// <summary>P-tuning's encoder width, and prefix tuning's projection width; 0 means <see cref="TokenDim"/>.</summary>
    public int EncoderHiddenSize { get; init; }

    /// <summary>LSTM layers (peft ignores it for the MLP).</summary>
    public int EncoderNumLayers { get; init; } = 2;

    /// <summary>Dropout between LSTM layers.</summary>
    public double EncoderDropout { get; init; }

    /// <summary>Prefix tuning: produce the keys and values with a two-layer tanh MLP from a smaller table.</summary>
    public bool PrefixProjection { get; init; }

    /// <summary>CAUSAL_LM or SEQ_2_SEQ_LM; null until added to a model.</summary>
    public string? TaskType { get; init; }

    /// <summary>Rows of the saved table: <see cref="NumVirtualTokens"/> × <see cref="NumTransformerSubmodules"/>, except
    /// for prefix tuning, whose table peft keeps at <see cref="NumVirtualTokens"/> rows on every model (on an
    /// encoder-decoder the prefix goes to the decoder's self-attention only).</summary>
    public int TotalVirtualTokens => Method == PromptMethod.PrefixTuning ? NumVirtualTokens : NumVirtualTokens * Math.Max(1, NumTransformerSubmodules);

    /// <summary>How <see cref="TotalVirtualTokens"/> comes about, for messages.</summary>
    public string RowsExplained => Method == PromptMethod.PrefixTuning
        ? $"{NumVirtualTokens} virtual tokens; a prefix has one row per token"
        : $"{NumVirtualTokens} virtual tokens × {Math.Max(1, NumTransformerSubmodules)} submodules";

    /// <summary>The width of one saved row: the prompt's hidden size, or every layer's key and value for prefix tuning.</summary>
    public long RowWidth => Method == PromptMethod.PrefixTuning ? 2L * NumLayers * TokenDim : TokenDim;

    /// <summary>The encoder width h in use: <see cref="EncoderHiddenSize"/>, or <see cref="TokenDim"/> when that is 0.</summary>
    public int EffectiveEncoderHidden => EncoderHiddenSize > 0 ? EncoderHiddenSize : (int)TokenDim;

    /// <summary>Refuses values that cannot mean anything; <paramref name="source"/> names the file or option.</summary>
    public void Validate(string source)
    {
        if (NumVirtualTokens <= 0)
            throw new PeftDslException($"{source}: num_virtual_tokens must be positive, got {NumVirtualTokens}");
        if (NumVirtualTokens > 1 << 16)
            throw new PeftDslException($"{source}: num_virtual_tokens {NumVirtualTokens} is larger than any model's positions");
        if (NumTransformerSubmodules is < 0 or > 2)
            throw new PeftDslException($"{source}: num_transformer_submodules must be 1 (decoder-only, or an encoder-decoder's encoder rows only) or 2 (an encoder-decoder, peft's), got {NumTransformerSubmodules}");
        if (EncoderHiddenSize < 0 || EncoderHiddenSize > 1 << 16)
            throw new PeftDslException($"{source}: encoder_hidden_size must be positive, got {EncoderHiddenSize}");
        if (EncoderNumLayers <= 0 || EncoderNumLayers > 64)
            throw new PeftDslException($"{source}: encoder_num_layers must be between 1 and 64, got {EncoderNumLayers}");
        if (!(EncoderDropout >= 0 && EncoderDropout < 1))
            throw new PeftDslException($"{source}: encoder_dropout must be in [0, 1), got {EncoderDropout}");
        if (Init == PromptInit.Text && string.IsNullOrEmpty(InitText))
            throw new PeftDslException($"{source}: prompt_tuning_init TEXT needs prompt_tuning_init_text");
        if (Init != PromptInit.Random && Method != PromptMethod.PromptTuning)
            throw new PeftDslException($"{source}: prompt_tuning_init {Init} applies to prompt tuning only");
    }
}
