using PeftDsl.Checkpoints;
using PeftDsl.Errors;
using PeftDsl.Modules;
using PeftDsl.Peft.Lora;
using PeftDsl.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftDsl.Peft;

// The tables LoRA can train besides its matrices: peft's trainable tokens (rows of the input embedding, shared by a
// tied head) and modules_to_save (whole copies of the embedding or an untied head).
public sealed partial class AdapterRegistry
{
    /// <summary>The input embedding trainable tokens replace rows of, with its path: the table the virtual-prompt site
    /// reads (a decoder-only model's token embedding); null for a model without one.</summary>
    private (string Path, Modules.Embedding Table)? InputTable() =>
        model is CausalLanguageModel && InputEmbedding.Find(model) is ({ } path, { } table) ? (path, table) : null;

    private Modules.Embedding? TokenTable() => InputTable()?.Table;

    /// <summary>The adapter's trainable tokens: rows of the input embedding, copies of the rows they replace
    /// (<paramref name="initialize"/>) or zeros that a file fills.</summary>
    private void AddTokens(string name, LoraConfig config, IReadOnlyList<long> tokens, string source, bool initialize)
    {
        if (model is not CausalLanguageModel)
            throw new PeftDslException($"{source}: trainable_token_indices is supported on decoder-only models, not on {model.ModelType}");
        var (path, table) = InputTable() ?? throw new PeftDslException($"{source}: trainable_token_indices needs the model's input embedding, which {model.GetName()} does not declare");
        if (config.TrainableTokenModule is { } module && path != module && !path.EndsWith("." + module, StringComparison.Ordinal))
            throw new PeftDslException($"{source}: trainable_token_indices names module '{module}', but trainable tokens go on the input embedding {path} only");
        if (tokens.FirstOrDefault(t => t >= table.Count) is var outside && outside >= table.Count)
            throw new PeftDslException($"{source}: trainable_token_indices holds {outside}, outside the vocabulary of {table.Count}");
        using var scope = NewDisposeScope();
        var ids = tokens.ToArray();
        using var noGrad = no_grad();
        var original = table.weight.index_select(0, tensor(ids, dtype: ScalarType.Int64, device: table.weight.device)).clone();
        var dtype = AdapterDType(table.weight.dtype);
        var rows = initialize ? original.to(dtype).clone() : zeros(ids.Length, table.Dim, dtype: dtype, device: table.weight.device);
        table.TokenAdapterFor(() => Enabled ? active.Where(a => !merged.Contains(a)).ToList() : []).Add(name, ids, rows, original);
    }

    /// <summary>The adapter's trainable-token rows and their checkpoint path (the input embedding's), when it has any.</summary>
    internal (string Path, Tensor Rows)? TokenRows(string name) =>
        InputTable() is ({ } path, { TokenAdapter: { } tokens }) && tokens.Adapters.Contains(name) ? (path, tokens.Rows(name)) : null;

    /// <summary>Where a config's trainable tokens would go: the input embedding's path and row width; null without one.</summary>
    internal (string Path, long Dim)? TokenTableShape() =>
        InputTable() is ({ } path, { } table) ? (path, table.Dim) : null;

    /// <summary>The modules <c>modules_to_save</c> can copy: the input embedding and an untied LM head, with their paths.</summary>
    private IEnumerable<(string Path, ISavedCopies Module, Tensor Weight)> SavedModules()
    {
        if (InputTable() is ({ } tablePath, { } table))
            yield return (tablePath, new EmbeddingCopies(table), table.weight);
        if (model is CausalLanguageModel { OutputHead: { IsTied: false, weight: { } w } head })
        {
            var headPath = CheckpointLayout.ModulesWithRoot(model).FirstOrDefault(m => ReferenceEquals(m.Module, head)).Path;
            if (headPath is not null) yield return (headPath, new HeadCopies(head), w);
        }
    }

    /// <summary>The adapter's <c>modules_to_save</c>: a trainable copy of each named module (the embedding, an untied head).</summary>
    private void AddSavedCopies(string name, LoraConfig config, IReadOnlyList<string> names, string source, bool initialize)
    {
        if (model is not CausalLanguageModel causal)
            throw new PeftDslException($"{source}: modules_to_save is supported on decoder-only models, not on {model.ModelType}");
        var candidates = SavedModules().ToList();
        foreach (var entry in names.Distinct())
        {
            bool Names(string path) => path == entry || path.EndsWith("." + entry, StringComparison.Ordinal);
            var match = candidates.FirstOrDefault(c => Names(c.Path));
            if (match.Module is null)
            {
                if (causal.OutputHead.IsTied && entry is "lm_head")
                    throw new PeftDslException($"{source}: modules_to_save names the LM head, which is tied to the input embedding; a trained copy would untie " +
                                               "them (peft warns about this). Train new tokens with trainable_token_indices, which keeps the tie");
                throw new PeftDslException($"{source}: modules_to_save names '{entry}'; only the input embedding and an untied LM head can be saved whole " +
                                           $"({string.Join(", ", candidates.Select(c => c.Path))})");
            }
            if (match.Module is EmbeddingCopies && causal.OutputHead.IsTied)
                throw new PeftDslException($"{source}: modules_to_save names the input embedding {match.Path}, which the LM head is tied to; a trained copy would " +
                                           "untie them (peft warns about this). Train new tokens with trainable_token_indices, which keeps the tie");
            if (match.Module is EmbeddingCopies && config.TrainableTokenIndices is not null)
                throw new PeftDslException($"{source}: the input embedding {match.Path} is in modules_to_save and has trainable_token_indices; it is trained whole or by rows, not both (peft refuses it too)");
            using var noGrad = no_grad();
            var copy = initialize ? match.Weight.to(AdapterDType(match.Weight.dtype)).clone() : zeros_like(match.Weight, dtype: AdapterDType(match.Weight.dtype));
            match.Module.For(() => Enabled ? active.ToList() : []).Add(name, copy);
        }
    }

    private void RemoveSavedCopies(string name)
    {
        foreach (var (_, module, _) in SavedModules())
        {
            module.SavedCopies?.Remove(name);
            module.DropIfEmpty();
        }
    }

    /// <summary>The adapter's saved copies with their checkpoint paths (for the adapter file).</summary>
    internal IEnumerable<(string Path, Tensor Weight)> SavedCopies(string name) =>
        SavedModules().Where(m => m.Module.SavedCopies?.Adapters.Contains(name) == true).Select(m => (m.Path, (Tensor)m.Module.SavedCopies!.Weight(name)));

    /// <summary>Where a config's modules_to_save would go: each named module's path and weight shape.</summary>
    internal IEnumerable<(string Path, long[] Shape)> SavedCopyShapes(LoraConfig config) =>
        config.ModulesToSave is not { } names ? []
            : SavedModules().Where(m => names.Any(n => m.Path == n || m.Path.EndsWith("." + n, StringComparison.Ordinal))).Select(m => (m.Path, m.Weight.shape));

    /// <summary>The embedding's and the head's <c>modules_to_save</c> slot, seen alike.</summary>
    private interface ISavedCopies
    {
        ModulesToSave? SavedCopies { get; }
        ModulesToSave For(Func<IEnumerable<string>> applying);
        void DropIfEmpty();
    }

    private sealed record EmbeddingCopies(Modules.Embedding Table) : ISavedCopies
    {
        public ModulesToSave? SavedCopies => Table.SavedCopies;
        public ModulesToSave For(Func<IEnumerable<string>> applying) => Table.SavedCopiesFor(applying);
        public void DropIfEmpty() => Table.DropSavedCopiesIfEmpty();
    }

    private sealed record HeadCopies(LmHead Head) : ISavedCopies
    {
        public ModulesToSave? SavedCopies => Head.SavedCopies;
        public ModulesToSave For(Func<IEnumerable<string>> applying) => Head.SavedCopiesFor(applying);
        public void DropIfEmpty() => Head.DropSavedCopiesIfEmpty();
    }

    private void RemoveTokens(string name)
    {
        if (TokenTable() is not { TokenAdapter: { } tokens } table) return;
        tokens.Remove(name);
        table.DropTokenAdapterIfEmpty();
    }
}
