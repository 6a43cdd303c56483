using PeftDsl.Errors;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftDsl.Modules;

/// <summary>A lookup table [count, dim]; the token embedding and learned positions.</summary>
public sealed class Embedding : nn.Module<Tensor, Tensor>
{
    /// <summary>A [count, dim] table left uninitialised: a checkpoint load or <c>WeightInitializer</c> fills it.</summary>
    public Embedding(long count, long dim) : base(nameof(Embedding))
    {
        Count = count;
        Dim = dim;
        weight = OwnedParameter.Of(empty(count, dim));
        register_parameter("weight", weight);
    }

    /// <summary>The [count, dim] table, saved as <c>{path}.weight</c>.</summary>
    public readonly Parameter weight;

    /// <summary>Rows of the table: the vocabulary size, or the number of learned positions.</summary>
    public long Count { get; }

    /// <summary>Width of each row: the hidden size C.</summary>
    public long Dim { get; }

    /// <summary>Multiply every looked-up row by √dim in the table's dtype (Gemma 3's scaled word embedding); the
    /// saved table stays unscaled.</summary>
    public bool Scaled { get; init; }

    /// <summary>Children are registered explicitly (<c>weight</c>, <c>token_adapter</c>), not by field reflection.</summary>
    protected override void RegisterComponents()
    {
    }

    /// <summary>LoRA's trainable tokens (<c>trainable_token_indices</c>) on this table, registered as <c>token_adapter</c>;
    /// null until an adapter asks for them.</summary>
    public Peft.Lora.TrainableTokens? TokenAdapter { get; private set; }

    /// <summary>The table's trainable-token module, created on first use.</summary>
    internal Peft.Lora.TrainableTokens TokenAdapterFor(Func<IEnumerable<string>> applying)
    {
        if (TokenAdapter is null)
        {
            TokenAdapter = new Peft.Lora.TrainableTokens(Count, applying);
            register_module("token_adapter", TokenAdapter);
        }
        return TokenAdapter;
    }

    /// <summary>Removes the trainable-token module once no adapter has rows in it.</summary>
    internal void DropTokenAdapterIfEmpty()
    {
        if (TokenAdapter is not { Adapters.Count: 0 } empty) return;
        _internal_submodules.Remove("token_adapter");
        empty.Dispose();
        TokenAdapter = null;
    }

    /// <summary>LoRA's <c>modules_to_save</c> copies of this table, registered as <c>modules_to_save</c>; null until an
    /// adapter asks for one.</summary>
    public Peft.Lora.ModulesToSave? SavedCopies { get; private set; }

    /// <summary>The table's <c>modules_to_save</c> module, created on first use.</summary>
    internal Peft.Lora.ModulesToSave SavedCopiesFor(Func<IEnumerable<string>> applying)
    {
        if (SavedCopies is null)
        {
            SavedCopies = new Peft.Lora.ModulesToSave(applying);
            register_module("modules_to_save", SavedCopies);
        }
        return SavedCopies;
    }

    /// <summary>Removes the <c>modules_to_save</c> module once no adapter has a copy in it.</summary>
    internal void DropSavedCopiesIfEmpty()
    {
        if (SavedCopies is not { Adapters.Count: 0 } empty) return;
        _internal_submodules.Remove("modules_to_save");
        empty.Dispose();
        SavedCopies = null;
    }

    /// <summary>(…) ids → (…, dim) from the active adapter's saved copy or the table, with any trainable tokens' rows in
    /// place, then scaled when <see cref="Scaled"/>.</summary>
    public override Tensor forward(Tensor ids)
    {
        using var scope = NewDisposeScope();
        var shape = ids.shape.Append(Dim).ToArray();
        var table = SavedCopies?.Current() ?? weight;
        var rows = table.index_select(0, ids.reshape(-1)).view(shape);
        if (TokenAdapter is { } tokens) rows = tokens.Replace(rows, ids);
        return (Scaled ? BySqrtDim(rows) : rows).MoveToOuterDisposeScope();
    }

    /// <summary>(…, C) × √C, with the multiplier rounded to <paramref name="x"/>'s dtype first as transformers' Gemma does
    /// (in bf16, √3072 = 55.43 becomes 55.5).</summary>
    public static Tensor BySqrtDim(Tensor x)
    {
        using var multiplier = tensor(Math.Sqrt(x.shape[^1]), dtype: x.dtype, device: x.device);
        return x * multiplier;
    }

    /// <summary>Learned position embeddings for <paramref name="positions"/>, none of which reaches
    /// <paramref name="end"/>; the bound is checked on the host, without reading the tensor.</summary>
    public Tensor Positions(Tensor positions, long end)
    {
        if (end > Count)
            throw new PeftDslException($"sequence of {end} positions exceeds the model's {Count} learned positions");
        return forward(positions);
    }
}

/// <summary>The output projection to the vocabulary, either with its own weight or sharing the token embedding's.
/// T5 scales the hidden states by dim^-0.5 first (the <c>scaled</c> constructor argument).</summary>
public sealed class LmHead : nn.Module<Tensor, Tensor>
{
    private readonly Embedding? tiedTo;
    private readonly double scale;

    /// <summary>An untied head with its own [vocab, dim] weight.</summary>
    /// <param name="softcap">Final logit soft-capping (<see cref="Softcap"/>); 0 for none.</param>
    public LmHead(long dim, long vocab, bool scaled = false, double softcap = 0) : base(nameof(LmHead))
    {
        Softcap = softcap;
        weight = OwnedParameter.Of(empty(vocab, dim));
        register_parameter("weight", weight);
        scale = scaled ? Math.Pow(dim, -0.5) : 1.0;
    }

    private LmHead(Embedding embedding, bool scaled, double softcap) : base(nameof(LmHead))
    {
        Softcap = softcap;
        tiedTo = embedding;
        scale = scaled ? Math.Pow(embedding.Dim, -0.5) : 1.0;
    }

    /// <summary>The tied embedding is a field, not a child: registering it would save its weight twice.</summary>
    protected override void RegisterComponents()
    {
    }

    /// <summary>LoRA's <c>modules_to_save</c> copies of an untied head's weight; null until an adapter asks for one.</summary>
    public Peft.Lora.ModulesToSave? SavedCopies { get; private set; }

    /// <summary>The head's <c>modules_to_save</c> module, created on first use.</summary>
    internal Peft.Lora.ModulesToSave SavedCopiesFor(Func<IEnumerable<string>> applying)
    {
        if (SavedCopies is null)
        {
            SavedCopies = new Peft.Lora.ModulesToSave(applying);
            register_module("modules_to_save", SavedCopies);
        }
        return SavedCopies;
    }

    /// <summary>Removes the <c>modules_to_save</c> module once no adapter has a copy in it.</summary>
    internal void DropSavedCopiesIfEmpty()
    {
        if (SavedCopies is not { Adapters.Count: 0 } empty) return;
        _internal_submodules.Remove("modules_to_save");
        empty.Dispose();
        SavedCopies = null;
    }

    /// <summary>A head that reuses <paramref name="embedding"/>'s weight; it owns no parameter.</summary>
    public static LmHead Tied(Embedding embedding, bool scaled = false, double softcap = 0) => new(embedding, scaled, softcap);

    /// <summary>The untied head's [vocab, dim] weight (<c>lm_head.weight</c>); null when tied, since the embedding's is used.</summary>
    public readonly Parameter? weight;

    /// <summary>The tensors a gradient of the logits reaches that train: the head's weight or saved copies, or, tied, the
    /// embedding's weight and trainable tokens (<c>ChunkedLoss</c> takes their gradients chunk by chunk).</summary>
    internal IEnumerable<Parameter> TrainableTensors() =>
        parameters().Concat(tiedTo?.parameters() ?? []).Where(p => p.requires_grad);

    /// <summary>True when the head reuses the token embedding's weight and owns no parameter.</summary>
    public bool IsTied => tiedTo is not null;

    /// <summary>Number of output classes (vocabulary entries).</summary>
    public long VocabSize => tiedTo?.Count ?? weight!.shape[0];

    /// <summary>Final logit soft-capping (Gemma 2's <c>final_logit_softcapping</c>): logits become cap × tanh(logits / cap);
    /// 0 for none.</summary>
    public double Softcap
    {
        get => softcap;
        private init => softcap = value >= 0 && double.IsFinite(value) ? value
            : throw new ConfigException($"final logit soft-capping must be a finite number ≥ 0 (0: none), not {value}");
    }

    private readonly double softcap;

    /// <summary>(…, dim) hidden states → (…, vocab) logits, scaled by dim^-0.5 first when the head was built scaled,
    /// and soft-capped when <see cref="Softcap"/> is set.</summary>
    public override Tensor forward(Tensor x)
    {
        var w = SavedCopies?.Current() ?? tiedTo?.weight ?? weight!;
        var tokens = tiedTo?.TokenAdapter;
        if (scale == 1.0 && softcap == 0 && tokens is null) return nn.functional.linear(x, w);
        using var scope = NewDisposeScope();
        var input = scale == 1.0 ? x : x * scale;
        var logits = nn.functional.linear(input, w);
        // A head tied to the embedding shares its trainable tokens' rows, as peft ties them.
        if (tokens is not null) logits = tokens.Logits(logits, input);
        if (softcap > 0) logits = (logits / softcap).tanh_() * softcap;
        return logits.MoveToOuterDisposeScope();
    }
}
