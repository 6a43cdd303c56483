using PeftDsl.Errors;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftDsl.Generation;

/// <summary>One generation API for decoder-only and encoder-decoder models.</summary>
public static class TextGenerator
{
    /// <summary>
    /// Continues every prompt. Prompts of different lengths are padded and masked; a prompt's output is the same
    /// as when it runs alone. Returns the new tokens per prompt, ending with a stop token when one was produced.
    /// </summary>
    public static IReadOnlyList<long[]> Generate(IGenerativeModel model, IReadOnlyList<long[]> prompts, GenerationOptions options)
    {
        options.Validate();
        CheckPrompts(prompts, model.VocabSize, model is Runtime.LanguageModel { Prompts.Names.Count: > 0 });
        CheckPositions(model, prompts, options);
        var results = prompts.Select(_ => new List<long>()).ToArray();
        if (options.MaxNewTokens == 0) return results.Select(r => r.ToArray()).ToList();

        // Decoding runs in eval mode (no adapter dropout); a model sampled from mid-training goes back to training.
        var wasTraining = ((nn.Module)model).training;
        model.eval();
        using var restore = new TrainingMode((nn.Module)model, wasTraining);
        using var noGrad = no_grad();
        var device = ((nn.Module)model).parameters().First().device;
        // Padding is masked, so its id only has to index the embedding: an out-of-vocabulary pad (the tiny
        // GPT-2 test model's EOS 50256) falls back to 0.
        var fill = options.PadTokenId < model.VocabSize ? options.PadTokenId : 0;
        var (ids, mask) = Pad(prompts, fill, left: model is Runtime.CausalLanguageModel, device);
        using var session = model.BeginDecoding(ids, mask, options);
        using var sampler = new TokenSampler(options, device);
        var stops = options.StopTokens.ToHashSet();
        var finished = new bool[prompts.Count];
        Tensor? chosen = null;
        try
        {
            for (var step = 0; step < options.MaxNewTokens && !finished.All(f => f); step++)
            {
                using var scope = NewDisposeScope();
                var logits = session.Next(chosen);                                                    // (B, V)
                if (options.VocabLimit is { } limit && limit < logits.shape[^1])
                    logits = logits.narrow(-1, 0, limit);   // ids past the tokenizer's are never chosen
                var tokens = sampler.Pick(logits).cpu().data<long>().ToArray();   // one sync per step
                var produced = new long?[tokens.Length];
                for (var row = 0; row < tokens.Length; row++)
                {
                    if (finished[row])
                    {
                        tokens[row] = fill;
                        continue;
                    }
                    results[row].Add(tokens[row]);
                    produced[row] = tokens[row];
                    finished[row] = stops.Contains(tokens[row]);
                }
                options.OnStep?.Invoke(produced);
                chosen?.Dispose();
                chosen = tensor(tokens, dtype: ScalarType.Int64, device: device).DetachFromDisposeScope();
            }
        }
        finally
        {
            chosen?.Dispose();
            ids.Dispose();
            mask.Dispose();
        }
        return results.Select(r => r.ToArray()).ToList();
    }

    /// <summary>Checked before the first step, so a long run never fails or drifts at its end: a model with learned
    /// positions cannot go past them, and one with rotary positions is not taken past the positions it was trained for
    /// (<c>max_position_embeddings</c>) unless <see cref="GenerationOptions.IgnoreMaxPositions"/>. Counts the longest
    /// prompt, the new tokens and the virtual tokens a prompt task puts in front (its most, over the tasks the rows use).</summary>
    public static void CheckPositions(IGenerativeModel model, IReadOnlyList<long[]> prompts, GenerationOptions options)
    {
        if (model is not Runtime.CausalLanguageModel lm || prompts.Count == 0) return;
        var learned = lm.PositionLimit is not null;
        if (lm.ContextLength is not { } limit || (!learned && options.IgnoreMaxPositions)) return;
        var table = lm.Prompts;
        var tasks = (options.AdapterNames ?? (table.Active is { } active ? [active] : [])).Where(n => n is not null && table.Contains(n)).Distinct();
        var virtualTokens = tasks.Select(t => (long)table[t!].NumVirtualTokens).DefaultIfEmpty(0).Max();
        var longest = prompts.Max(p => p.Length);
        if (virtualTokens + longest + options.MaxNewTokens <= limit) return;
        var need = $"generation: the longest prompt ({longest} tokens)" + (virtualTokens > 0 ? $" after {virtualTokens} virtual tokens" : "") +
                   $" plus {options.MaxNewTokens} new tokens";
        throw new PeftDslException(learned
            ? $"{need} exceed the model's {limit} positions"
            : $"{need} exceed the {limit} positions the model was trained for (max_position_embeddings); past them its rotary positions " +
              "are ones it never saw: generate fewer tokens, or pass --ignore-max-positions (IgnoreMaxPositions) to go on anyway");
    }

    /// <param name="slots">Negative ids are virtual-prompt slots (the model has prompt tasks, which check them).</param>
    private static void CheckPrompts(IReadOnlyList<long[]> prompts, long vocab, bool slots)
    {
        if (prompts.Count == 0) throw new PeftDslException("generation: no prompts given");
        for (var i = 0; i < prompts.Count; i++)
        {
            if (prompts[i].Length == 0) throw new PeftDslException($"generation: prompt {i + 1} is empty");
            var bad = prompts[i].FirstOrDefault(t => (t < 0 && !slots) || t >= vocab, -1);
            if (bad != -1 || (!slots && prompts[i].Contains(-1)))
                throw new PeftDslException($"generation: prompt {i + 1} has token id {(bad != -1 ? bad : -1)} outside the model's vocabulary of {vocab}");
        }
    }

    /// <summary>(B, T) ids and mask; causal prompts are padded on the left so every row ends at the last column.</summary>
    private static (Tensor Ids, Tensor Mask) Pad(IReadOnlyList<long[]> prompts, long pad, bool left, Device device)
    {
        var length = prompts.Max(p => p.Length);
        var ids = new long[prompts.Count, length];
        var mask = new long[prompts.Count, length];
        for (var row = 0; row < prompts.Count; row++)
        {
            var offset = left ? length - prompts[row].Length : 0;
            for (var col = 0; col < length; col++)
            {
                var inside = col >= offset && col < offset + prompts[row].Length;
                ids[row, col] = inside ? prompts[row][col - offset] : pad;
                mask[row, col] = inside ? 1 : 0;
            }
        }
        return (tensor(ids, device: device), tensor(mask, device: device));
    }
}

/// <summary>Puts a module back into training mode when disposed, if it was training.</summary>
internal readonly struct TrainingMode(nn.Module module, bool training) : IDisposable
{
    public void Dispose()
    {
        if (training) module.train();
    }
}
