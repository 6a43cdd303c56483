using PeftDsl.Errors;
using PeftDsl.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftDsl.Peft.Prompts;

/// <summary>Where the table attaches and what the model's geometry makes of a task's config.</summary>
public sealed partial class PromptTable
{
    /// <summary>The token embedding the virtual-prompt site follows.</summary>
    private Modules.Embedding InputEmbedding() => Peft.InputEmbedding.Find(model) switch
    {
        null => throw new PeftDslException($"{model.GetName()} declares no virtual-prompt site, so prompt learning cannot attach"),
        ({ } path, null) => throw new PeftDslException($"{model.GetName()}: the virtual-prompt site {path} is not a token embedding"),
        (_, { } table) => table,
    };

    /// <summary>Fills the geometry from the model, as peft's <c>_prepare_prompt_learning_config</c> does.</summary>
    private PromptConfig Complete(PromptConfig config, string source)
    {
        var seq2seq = model is Seq2SeqLanguageModel;
        if (!seq2seq && config.NumTransformerSubmodules > 1 || config.NumTransformerSubmodules is < 0 or > 2)
            throw new PeftDslException($"{source}: num_transformer_submodules {config.NumTransformerSubmodules} does not fit " +
                                       (seq2seq ? "an encoder-decoder (2, peft's, or 1, encoder rows only)" : "a causal LM (1)"));
        config = config with
        {
            TaskType = seq2seq ? "SEQ_2_SEQ_LM" : "CAUSAL_LM",
            // An encoder-decoder's table has 2P rows unless the config asks for NeMo's P (docs/prompt-learning.md).
            NumTransformerSubmodules = seq2seq ? (config.NumTransformerSubmodules == 1 ? 1 : 2) : 1,
            TokenDim = InputEmbedding().Dim,
        };
        if (config.Method == PromptMethod.PrefixTuning)
        {
            var (layers, heads, headDim) = SelfAttentionGeometry(source);
            config = config with { NumLayers = layers, NumAttentionHeads = heads, TokenDim = heads * headDim };
        }
        config.Validate(source);
        return config;
    }

    /// <summary>A loaded config must mean this model: same kind, token size and, for prefix tuning, geometry.</summary>
    private PromptConfig CheckFits(PromptConfig config, string source)
    {
        var seq2seq = model is Seq2SeqLanguageModel;
        if (config.TaskType is { } t && t != (seq2seq ? "SEQ_2_SEQ_LM" : "CAUSAL_LM"))
            throw new PeftDslException($"{source}: task_type is {t}, but the model is {(seq2seq ? "an encoder-decoder (SEQ_2_SEQ_LM)" : "a causal LM (CAUSAL_LM)")}");
        // peft writes 2 for an encoder-decoder (a table of 2P rows, the encoder reading the first P); 1 is NeMo's
        // encoder-only table of P rows.
        if (seq2seq ? config.NumTransformerSubmodules is not (1 or 2) : config.NumTransformerSubmodules != 1)
            throw new PeftDslException($"{source}: num_transformer_submodules is {config.NumTransformerSubmodules}, this model needs " +
                                       (seq2seq ? "2 (peft's) or 1 (encoder rows only)" : "1"));
        if (config.Method == PromptMethod.PrefixTuning)
        {
            var (layers, heads, headDim) = SelfAttentionGeometry(source);
            if (config.NumLayers != layers || config.NumAttentionHeads != heads || config.TokenDim != heads * headDim)
                throw new PeftDslException($"{source}: the prefix is for {config.NumLayers} layers × {config.NumAttentionHeads} heads × " +
                                           $"token_dim {config.TokenDim}; this model has {layers} {(seq2seq ? "decoder " : "")}self-attention layers × {heads} key/value heads × {heads * headDim}" +
                                           (seq2seq && config.NumLayers != layers
                                               ? " (peft writes the encoder's layer count for T5 models whose decoder has fewer layers; only equal counts are supported)"
                                               : ""));
        }
        else if (config.TokenDim != InputEmbedding().Dim)
        {
            throw new PeftDslException($"{source}: token_dim is {config.TokenDim}, the model's embeddings have {InputEmbedding().Dim}");
        }
        return config;
    }

    /// <summary>Self-attention layers, key/value heads and head size, read from one probe step through a cache, so
    /// any architecture the DSL declares answers in its own terms. On an encoder-decoder these are the decoder's: peft
    /// gives the prefix to the decoder's self-attention only (its cache's cross-attention part stays empty).</summary>
    private (int Layers, int Heads, long HeadDim) SelfAttentionGeometry(string source)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        using var cache = new KvCache();
        var wasTraining = model.training;
        model.eval();
        try
        {
            var probe = zeros(1, 1, dtype: ScalarType.Int64, device: Device);
            if (model is Seq2SeqLanguageModel seq2seq)
                seq2seq.Decode(probe, seq2seq.Encode(probe, null, AdapterRouting.None), null, cache: cache, routing: AdapterRouting.None, lastPositionOnly: true);
            else
                ((CausalLanguageModel)model).Logits(probe, cache: cache, routing: AdapterRouting.None, lastPositionOnly: true);
        }
        finally
        {
            model.train(wasTraining);
        }
        var shapes = cache.SelfShapes;
        if (shapes.Count == 0 || shapes.Distinct().Count() != 1)
            throw new PeftDslException($"{source}: prefix tuning needs self-attention layers of one shape; this model's are {string.Join(", ", shapes)}");
        return (shapes.Count, (int)shapes[0].Heads, shapes[0].HeadDim);
    }

    private Tensor InitialRows(PromptConfig config, IReadOnlyList<long>? initTextIds, string source)
    {
        using var noGrad = no_grad();
        var embedding = InputEmbedding();
        var n = config.TotalVirtualTokens;
        switch (config.Init)
        {
            case PromptInit.Text:
                if (initTextIds is not { Count: > 0 })
                    throw new PeftDslException($"{source}: TEXT initialisation needs the init text's token ids (it tokenized to nothing)");
                if (initTextIds.Any(id => id < 0 || id >= embedding.Count))
                    throw new PeftDslException($"{source}: an init text token id is outside the vocabulary of {embedding.Count}");
                // peft: repeat the ids to cover the virtual tokens, then cut to length.
                var ids = Enumerable.Range(0, n).Select(i => initTextIds[i % initTextIds.Count]).ToArray();
                // Through the module, as peft calls word_embeddings(ids): a scaled embedding (Gemma 3) gives scaled rows.
                return embedding.forward(tensor(ids, dtype: ScalarType.Int64, device: embedding.weight.device)).to(Dtype).clone();
            case PromptInit.SampleVocab:
                var sampled = randint(0, embedding.Count, [n], dtype: ScalarType.Int64, device: embedding.weight.device);
                return embedding.forward(sampled).to(Dtype).clone();
            default:
                return config.Method == PromptMethod.PrefixTuning
                    ? randn(n, config.RowWidth, dtype: Dtype, device: Device)
                    : randn(n, config.TokenDim, dtype: Dtype, device: Device);
        }
    }
}
