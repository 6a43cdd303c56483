using PeftDsl.Errors;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftDsl.Modules;

/// <summary>A lookup table [count, dim]; the token embedding and learned positions.</summary>
public sealed class Embedding : nn.Module<Tensor, Tensor>
{
    public Embedding(long count, long dim) : base(nameof(Embedding))
    {
        Count = count;
        Dim = dim;
        weight = new Parameter(empty(count, dim));
        register_parameter("weight", weight);
    }

    public readonly Parameter weight;

    public long Count { get; }

    public long Dim { get; }

    /// <summary>(…) ids → (…, dim).</summary>
    public override Tensor forward(Tensor ids)
    {
        using var scope = NewDisposeScope();
        var shape = ids.shape.Append(Dim).ToArray();
        return weight.index_select(0, ids.reshape(-1)).view(shape).MoveToOuterDisposeScope();
    }

    /// <summary>Learned positions 0..T-1 (+ offset), checked against the table size on the host.</summary>
    public Tensor Positions(long length, long offset = 0)
    {
        if (offset + length > Count)
            throw new PeftDslException($"sequence of {offset + length} positions exceeds the model's {Count} learned positions");
        using var positions = arange(offset, offset + length, dtype: ScalarType.Int64, device: weight.device);
        return forward(positions);
    }
}

/// <summary>The output projection to the vocabulary, either with its own weight or sharing the token embedding's.</summary>
public sealed class LmHead : nn.Module<Tensor, Tensor>
{
    private readonly Embedding? tiedTo;

    /// <summary>An untied head with its own [vocab, dim] weight.</summary>
    public LmHead(long dim, long vocab) : base(nameof(LmHead))
    {
        weight = new Parameter(empty(vocab, dim));
        register_parameter("weight", weight);
    }

    private LmHead(Embedding embedding) : base(nameof(LmHead)) => tiedTo = embedding;

    /// <summary>A head that reuses <paramref name="embedding"/>'s weight; it owns no parameter.</summary>
    public static LmHead Tied(Embedding embedding) => new(embedding);

    public readonly Parameter? weight;

    public bool IsTied => tiedTo is not null;

    public override Tensor forward(Tensor x) => nn.functional.linear(x, tiedTo?.weight ?? weight!);
}
