using PeftDsl.Generators.Model;
using PeftDsl.Generators.Parsing;
using static PeftDsl.Generators.Emit.TypeNames;

namespace PeftDsl.Generators.Emit
{
    /// <summary>
    /// A class whose declaration has errors still gets the members that other generated classes and the user's code
    /// call, each throwing. Without them every PEFT diagnostic drags in C# errors from generated files (no such
    /// constructor, no forward, no DescribeCheckpoint), which are what an IDE lists first.
    /// </summary>
    internal static class SkeletonEmitter
    {
        public static string Emit(SkeletonSpec s)
        {
            var w = EmitHelpers.Begin(s.Namespace);
            var c = s.ConfigType;
            w.Line($"/// <summary>{s.Name}'s declaration has errors (see its PEFT diagnostics); every member throws.</summary>");
            w.Open($"partial class {s.Name} : {Base(s.Kind)}");
            w.Line($"private const string Broken = {Literals.String(s.Name + "'s declaration has errors; see its PEFT diagnostics")};");
            w.Line();
            foreach (var field in s.Fields) w.Line($"public readonly {field} = null!;");
            switch (s.Kind)
            {
                case ModuleKind.CausalLM:
                case ModuleKind.Seq2SeqLM:
                    w.Line($"public {c} Config => throw new global::System.InvalidOperationException(Broken);");
                    w.Line($"public {s.Name}({c} config, {WeightInit} init = {WeightInit}.Normal) : base(nameof({s.Name})) => throw new global::System.InvalidOperationException(Broken);");
                    w.Line("public override string ModelType => throw new global::System.InvalidOperationException(Broken);");
                    w.Line("public override long VocabSize => throw new global::System.InvalidOperationException(Broken);");
                    w.Line($"public override {CheckpointRules} CheckpointRules => throw new global::System.InvalidOperationException(Broken);");
                    w.Line($"protected override {LmHead} Head => throw new global::System.InvalidOperationException(Broken);");
                    if (s.Kind == ModuleKind.CausalLM)
                    {
                        w.Line($"protected override {Tensor} Hidden({Tensor} inputIds, {StackInputs} inputs) => throw new global::System.InvalidOperationException(Broken);");
                    }
                    else
                    {
                        w.Line("public override long DecoderStartTokenId => throw new global::System.InvalidOperationException(Broken);");
                        w.Line($"protected override {Tensor} EncoderHidden({Tensor} inputIds, {StackInputs} inputs) => throw new global::System.InvalidOperationException(Broken);");
                        w.Line($"protected override {Tensor} DecoderHidden({Tensor} decoderIds, {StackInputs} inputs) => throw new global::System.InvalidOperationException(Broken);");
                    }
                    w.Line($"public static {s.Name} FromPretrained(string directory, {ModelLoadOptions}? options = null) => throw new global::System.InvalidOperationException(Broken);");
                    w.Line($"public static global::System.Collections.Generic.IReadOnlyList<{CheckpointKey}> CheckpointKeys({c} config) => throw new global::System.InvalidOperationException(Broken);");
                    RootEmitter.Targets(w, s.Targets);
                    break;
                case ModuleKind.TransformerStack:
                    if (s.TokenField is not null) w.Line($"public readonly {Embedding} {s.TokenField} = null!;");
                    w.Line(s.SharedTokens
                        ? $"public {s.Name}({c} config, {Embedding} sharedEmbedding) : base(nameof({s.Name})) => throw new global::System.InvalidOperationException(Broken);"
                        : $"public {s.Name}({c} config) : base(nameof({s.Name})) => throw new global::System.InvalidOperationException(Broken);");
                    w.Line($"public override {Tensor} forward({Tensor} inputIds, {StackInputs} inputs) => throw new global::System.InvalidOperationException(Broken);");
                    w.Line("public long? PositionLimit => throw new global::System.InvalidOperationException(Broken);");
                    w.Line("public long? ContextLength => throw new global::System.InvalidOperationException(Broken);");
                    w.Line($"internal static (long Vocab, long Dim) EmbeddingShape({c} config) => throw new global::System.InvalidOperationException(Broken);");
                    w.Line($"internal static void DescribeCheckpoint({c} config, string prefix, {KeyList} keys) => throw new global::System.InvalidOperationException(Broken);");
                    break;
                default:
                    w.Line($"public {s.Name}({c} config, int layer) : base(nameof({s.Name})) => throw new global::System.InvalidOperationException(Broken);");
                    w.Line($"public override {Tensor} forward({Tensor} x, {ForwardContext} ctx) => throw new global::System.InvalidOperationException(Broken);");
                    w.Line($"internal static void DescribeCheckpoint({c} config, string prefix, {KeyList} keys, int layer) => throw new global::System.InvalidOperationException(Broken);");
                    break;
            }
            w.Close();
            return w.ToString();
        }

        private static string Base(ModuleKind kind) => kind switch
        {
            ModuleKind.CausalLM => CausalLanguageModel,
            ModuleKind.Seq2SeqLM => Seq2SeqLanguageModel,
            ModuleKind.TransformerStack => EmitHelpers.ModuleBase(Tensor, StackInputs, Tensor),
            _ => EmitHelpers.ModuleBase(Tensor, ForwardContext, Tensor),
        };
    }
}
