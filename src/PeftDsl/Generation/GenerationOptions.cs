using System.Globalization;
using PeftDsl.Errors;

namespace PeftDsl.Generation;

/// <summary>How to pick tokens and when to stop. Greedy unless <see cref="DoSample"/>; sampling applies
/// temperature, then top-k, then top-p, as transformers' warpers do.</summary>
public sealed record GenerationOptions
{
    /// <summary>New tokens at most, per prompt.</summary>
    public int MaxNewTokens { get; init; } = 32;

    /// <summary>Sample from the filtered distribution (transformers' <c>do_sample</c>); false, the default, is greedy argmax.</summary>
    public bool DoSample { get; init; }

    /// <summary>Divides the logits before sampling; must be positive.</summary>
    public double Temperature { get; init; } = 1.0;

    /// <summary>Keep only the k most likely tokens; 0 keeps all.</summary>
    public int TopK { get; init; }

    /// <summary>Keep the smallest set of most likely tokens whose probability reaches p; in (0, 1].</summary>
    public double TopP { get; init; } = 1.0;

    /// <summary>Seed of the sampling generator, so a run can be repeated.</summary>
    public ulong? Seed { get; init; }

    /// <summary>A prompt's generation ends after it produces one of these (included in the output).</summary>
    public IReadOnlyList<long> StopTokens { get; init; } = [];

    /// <summary>Fills padding: left of causal prompts, right of encoder prompts, and finished rows.</summary>
    public long PadTokenId { get; init; }

    /// <summary>The decoder's first token for encoder-decoder models (T5: the pad token, 0).</summary>
    public long? DecoderStartTokenId { get; init; }

    /// <summary>Reuse keys and values of earlier tokens; off recomputes the whole sequence each step.</summary>
    public bool UseCache { get; init; } = true;

    /// <summary>One adapter name per prompt (<c>__base__</c> for none), as a mixed-adapter batch; null runs the
    /// model's active adapters for every prompt.</summary>
    public IReadOnlyList<string>? AdapterNames { get; init; }

    /// <summary>Only ids below this are ever chosen; null allows the model's whole vocabulary. For a model whose
    /// vocabulary is padded past its tokenizer's (Pythia: 50,304 rows for 50,277 tokens), so every generated id
    /// decodes.</summary>
    public long? VocabLimit { get; init; }

    /// <summary>Generate past the positions the model was trained for (<c>max_position_embeddings</c>), which rotary
    /// positions allow but the model never saw; by default such a run is refused before the first step. Learned
    /// positions (GPT-2) cannot be passed either way.</summary>
    public bool IgnoreMaxPositions { get; init; }

    /// <summary>Called after each step with the token each prompt just produced (null for a prompt already
    /// finished), so a caller can stream the output.</summary>
    public Action<IReadOnlyList<long?>>? OnStep { get; init; }

    /// <summary>Rejects values no run could use, with the value named.</summary>
    public void Validate()
    {
        if (MaxNewTokens < 0) throw Bad($"max new tokens must be 0 or more, got {MaxNewTokens}");
        if (DoSample && !(Temperature > 0 && double.IsFinite(Temperature)))
            throw Bad($"temperature must be a positive number, got {Show(Temperature)}");
        if (TopK < 0) throw Bad($"top-k must be 0 (off) or positive, got {TopK}");
        if (!(TopP > 0 && TopP <= 1)) throw Bad($"top-p must be in (0, 1], got {Show(TopP)}");
        if (PadTokenId < 0) throw Bad($"the pad token id must not be negative, got {PadTokenId}");
        if (StopTokens.FirstOrDefault(t => t < 0) is var bad && bad < 0) throw Bad($"stop token ids must not be negative, got {bad}");
        if (VocabLimit is { } limit && limit <= 0) throw Bad($"the vocabulary limit must be positive, got {limit}");
    }

    private static PeftDslException Bad(string message) => new("generation: " + message);

    private static string Show(double x) => x.ToString("R", CultureInfo.InvariantCulture);
}
