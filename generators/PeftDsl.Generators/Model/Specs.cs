namespace PeftDsl.Generators.Model
{
    // Specs are what the parser hands the emitter. They hold only strings, numbers, enums and EquatableArray,
    // never an ISymbol, SyntaxNode, Location or Compilation: the incremental pipeline compares them by value to
    // decide whether to re-emit, and a symbol would keep old compilations alive and make every run look new.

    internal enum ModuleKind
    {
        CausalLM,
        Seq2SeqLM,
        TransformerStack,
        TransformerBlock,
        SelfAttention,
        CrossAttention,
        FeedForward,
    }

    /// <summary>A hyper-parameter: C# code that reads it, and how to name it in messages.</summary>
    /// <param name="Expression">C#, e.g. <c>config.Hidden</c> or <c>32</c>.</param>
    /// <param name="Display">The config.json key (or member, or literal) for runtime messages.</param>
    /// <param name="Literal">The numeric value when the binding is a literal number, for compile-time checks.</param>
    internal sealed record Binding(string Expression, string Display, double? Literal);

    /// <summary>A class referenced by typeof in an attribute.</summary>
    internal sealed record TypeRef(string FullName, string Name);

    /// <summary>A checkpoint name and the C# field that holds the module.</summary>
    internal sealed record Member(string Name, string Field);

    /// <param name="When">The flag the projection's existence depends on, or null when it always exists.</param>
    /// <param name="Interleaved">A fused Qkv output ordered per key/value group (GPT-NeoX, Falcon), not [q | k | v].</param>
    internal sealed record ProjectionSpec(Member Member, string Role, string Layout, Binding Bias, Binding? When, bool Interleaved = false);

    /// <param name="Kind">SelfAttention, CrossAttention or FeedForward: fixes the call and its place in the block.</param>
    /// <param name="Dropout">Dropout on what the sublayer adds to the residual stream, in training; null for none.</param>
    /// <param name="PostNorm">A norm on the sublayer's output before its adapter site (Gemma 2/3); null for none.</param>
    internal sealed record SublayerSpec(Member Member, TypeRef Module, ModuleKind Kind, Member Norm, string AdapterSite, Binding? Dropout = null,
        Member? PostNorm = null);

    /// <summary>The LM head. <paramref name="TiedEmbedding"/> is the C# path of the embedding it may share.</summary>
    /// <param name="Softcap">Final logit soft-capping, or null for none.</param>
    internal sealed record HeadSpec(Member Head, Binding Tie, Binding Scale, string TiedEmbedding, Binding? Softcap = null);

    /// <param name="AlsoReads">Further config.json model_type values the class accepts.</param>
    internal sealed record CausalLmSpec(
        string ModelType,
        EquatableArray<string> AlsoReads,
        EquatableArray<string> IgnoreKeys,
        Member Body,
        TypeRef BodyType,
        HeadSpec Head,
        EquatableArray<TargetSpec> Targets);

    /// <summary>A stack referenced by a root, and whether it takes the root's shared embedding.</summary>
    internal sealed record StackRef(Member Member, TypeRef Type, bool TakesSharedEmbedding);

    internal sealed record Seq2SeqSpec(
        string ModelType,
        EquatableArray<string> AlsoReads,
        Binding DecoderStart,
        EquatableArray<string> IgnoreKeys,
        Member Shared,
        Binding Vocab,
        Binding Dim,
        StackRef Encoder,
        StackRef Decoder,
        HeadSpec Head,
        EquatableArray<TargetSpec> Targets);

    /// <summary>A peft-style target-module name the model offers, with the C# constant that spells it.</summary>
    internal sealed record TargetSpec(string Identifier, string Value);

    internal sealed record StackSpec(
        Binding Dim,
        Member TokenEmbedding,
        Binding? Vocab,
        bool SharedTokens,
        bool VirtualPrompts,
        Member? Positions,
        Binding? MaxPositions,
        RotarySpec? Rotary,
        Member Blocks,
        TypeRef BlockType,
        Binding Count,
        Member FinalNorm,
        string FinalNormKind,
        Binding FinalNormEps,
        Binding? EmbeddingDropout = null,
        Binding? FinalDropout = null,
        string EmbeddingScale = "None");

    /// <param name="Scaling">The scaled rope types' parameters that are bound (PeftDsl.Modules.RopeScaling's properties), or null.</param>
    /// <param name="MaxPositions">The positions the checkpoint was trained for, or null: generation's soft limit.</param>
    /// <param name="LocalTheta">θ of the sliding-window layers' own unscaled tables (Gemma 3), or null.</param>
    internal sealed record RotarySpec(Binding HeadDim, Binding Theta, Binding RopeType, Binding Fraction, EquatableArray<ScalingBinding>? Scaling,
        Binding? MaxPositions = null, Binding? LocalTheta = null);

    /// <summary>One bound rope-scaling parameter: the RopeScaling property and its binding.</summary>
    internal sealed record ScalingBinding(string Property, Binding Value);

    /// <param name="Parallel">Every sublayer reads the block input; their outputs are added together.</param>
    internal sealed record BlockSpec(Binding Dim, string NormKind, Binding NormEps, EquatableArray<SublayerSpec> Sublayers, Binding Parallel);

    /// <param name="Cross">Cross-attention: keys and values come from the encoder output.</param>
    internal sealed record AttentionSpec(
        Binding Dim,
        Binding Heads,
        Binding? KvHeads,
        Binding? HeadDim,
        bool Causal,
        bool Rotary,
        bool Scaled,
        bool Cross,
        RelativeBiasSpec? RelativeBias,
        EquatableArray<ProjectionSpec> Projections,
        Binding? SlidingWindow = null,
        Binding? Dropout = null,
        HeadNormSpec? HeadNorms = null,
        Binding? Softcap = null,
        Binding? QueryScalar = null,
        Binding? LayerTypes = null);

    /// <summary>Per-head norms on queries and keys before RoPE (Qwen3's and Gemma 3's q_norm, k_norm).</summary>
    /// <param name="Kind">RmsNorm or GemmaRmsNorm.</param>
    internal sealed record HeadNormSpec(Member Query, Member Key, Binding Eps, string Kind = "RmsNorm");

    internal sealed record RelativeBiasSpec(Member Member, Binding Buckets, Binding MaxDistance);

    /// <param name="Dropout">Dropout on the inner activation in training (T5); null for none.</param>
    internal sealed record FeedForwardSpec(Binding Dim, Binding Inner, Binding Activation, EquatableArray<ProjectionSpec> Projections, Binding? Dropout = null);

    /// <summary>One DSL class; exactly one of the kind parts is set.</summary>
    internal sealed record ModuleSpec(
        string? Namespace,
        string Name,
        ModuleKind Kind,
        string ConfigType,
        CausalLmSpec? CausalLm = null,
        Seq2SeqSpec? Seq2Seq = null,
        StackSpec? Stack = null,
        BlockSpec? Block = null,
        AttentionSpec? Attention = null,
        FeedForwardSpec? FeedForward = null)
    {
        public string HintName => (Namespace is null ? "" : Namespace + ".") + Name + ".g.cs";
    }

    /// <param name="Computes">C# literals of the values the declaration computes ([ConfigKey(Computes = …)]); null for any.</param>
    internal sealed record ConfigMemberSpec(string Name, string Type, bool Nullable, bool Required, EquatableArray<string> Keys,
        EquatableArray<string>? Computes = null);

    internal sealed record ConfigSpec(string? Namespace, string Name, EquatableArray<ConfigMemberSpec> Members)
    {
        public string HintName => (Namespace is null ? "" : Namespace + ".") + Name + ".g.cs";
    }

    /// <summary>What a transform produces: a spec to emit (null when the declaration is invalid) and the
    /// diagnostics, which travel separately so a moved span re-reports without re-emitting source.</summary>
    /// <param name="Skeleton">For a module class with errors that can still be completed (partial, top-level, not
    /// generic): the members other generated code and the user's code call, so the PEFT diagnostics stand alone.</param>
    /// <param name="ConfigSkeleton">For a [ModelConfig] with errors that can still be completed (partial, top-level, not
    /// generic): FromJson and Load, throwing, so the modules and the user's code that call them compile.</param>
    internal sealed record ParseResult<T>(T? Spec, EquatableArray<DiagnosticInfo> Diagnostics, SkeletonSpec? Skeleton = null,
        ConfigSkeletonSpec? ConfigSkeleton = null) where T : class;

    /// <summary>A refused config's name and whether it is declared as a record (the partial part must say the same).</summary>
    internal sealed record ConfigSkeletonSpec(string? Namespace, string Name, bool IsRecord)
    {
        public string HintName => (Namespace is null ? "" : Namespace + ".") + Name + ".g.cs";
    }

    /// <param name="TokenField">A stack's token-embedding field, which a tied head reads; null if none or invalid.</param>
    /// <param name="Fields">A root's component fields ("Type field"), which the user's code may read.</param>
    /// <param name="Targets">A root's typed target names, which the user's code may name.</param>
    internal sealed record SkeletonSpec(string? Namespace, string Name, ModuleKind Kind, string ConfigType, bool SharedTokens, string? TokenField,
        EquatableArray<string> Fields = default, EquatableArray<TargetSpec> Targets = default)
    {
        public string HintName => (Namespace is null ? "" : Namespace + ".") + Name + ".g.cs";
    }
}
