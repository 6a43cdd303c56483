using System.Linq;
using PeftDsl.Generators.Model;
using PeftDsl.Generators.Parsing;
using static PeftDsl.Generators.Emit.TypeNames;

namespace PeftDsl.Generators.Emit
{
    /// <summary>[SelfAttention] → projections, head split, optional RoPE, SDPA, output projection.</summary>
    internal static class AttentionEmitter
    {
        public static string Emit(ModuleSpec spec)
        {
            var a = spec.Attention!;
            var w = EmitHelpers.Begin(spec.Namespace);
            w.Open($"partial class {spec.Name} : {EmitHelpers.ModuleBase(Tensor, ForwardContext, Tensor)}");
            w.Line("private readonly long nHead;");
            w.Line("private readonly long nKvHead;");
            w.Line("private readonly long headDim;");
            w.Line();
            foreach (var p in a.Projections)
            {
                w.Line($"/// <summary>{p.Member.Name}: the {p.Role} projection ({p.Layout} layout in the checkpoint).</summary>");
                w.Line($"public readonly {PeftLinear} {p.Member.Field};");
                w.Line();
            }

            w.Open($"public {spec.Name}({spec.ConfigType} config, int? layer) : base(nameof({spec.Name}))");
            w.Line("long dim;");
            w.Line("(dim, nHead, nKvHead, headDim) = Sizes(config);");
            foreach (var p in a.Projections)
            {
                var (inF, outF, split) = Shape(p.Role);
                var splitArg = split is null ? "" : ", " + split;
                w.Line($"{p.Member.Field} = new {PeftLinear}({inF}, {outF}, {p.Bias.Expression}, {ProjectionRole}.{p.Role}, layer, {WeightLayout}.{p.Layout}{splitArg});");
            }
            EmitHelpers.Register(w, a.Projections.Select(p => p.Member));
            w.Close();
            w.Line();

            EmitForward(w, a);
            w.Line();
            EmitSizes(w, spec, a);
            w.Line();
            w.Open($"internal static void DescribeCheckpoint({spec.ConfigType} config, string prefix, {KeyList} keys)");
            w.Line("var (dim, nHead, nKvHead, headDim) = Sizes(config);");
            foreach (var p in a.Projections)
            {
                var (inF, outF, _) = Shape(p.Role);
                w.Line($"{CheckpointKeys}.Linear(keys, prefix + {Literals.String(p.Member.Name)}, {inF}, {outF}, {p.Bias.Expression}, {WeightLayout}.{p.Layout});");
            }
            w.Close();
            w.Close();
            return w.ToString();
        }

        private static void EmitForward(IndentedWriter w, AttentionSpec a)
        {
            ProjectionSpec Role(string role) => a.Projections.First(p => p.Role == role);
            w.Line("/// <param name=\"x\">(B, T, C) hidden states.</param>");
            w.Line("/// <returns>(B, T, C)</returns>");
            w.Open($"public override {Tensor} forward({Tensor} x, {ForwardContext} ctx)");
            w.Line($"using var scope = {Torch}.NewDisposeScope();");
            if (a.Projections.Any(p => p.Role == "Qkv"))
            {
                w.Line($"var qkv = {Role("Qkv").Member.Field}.forward(x).split(new[] {{ nHead * headDim, nKvHead * headDim, nKvHead * headDim }}, -1);");
                w.Line($"var q = {Attention}.SplitHeads(qkv[0], nHead, headDim);    // (B, nh, T, hs)");
                w.Line($"var k = {Attention}.SplitHeads(qkv[1], nKvHead, headDim);  // (B, nkv, T, hs)");
                w.Line($"var v = {Attention}.SplitHeads(qkv[2], nKvHead, headDim);  // (B, nkv, T, hs)");
            }
            else
            {
                w.Line($"var q = {Attention}.SplitHeads({Role("Query").Member.Field}.forward(x), nHead, headDim);    // (B, nh, T, hs)");
                if (a.Projections.Any(p => p.Role == "KeyValue"))
                {
                    w.Line($"var kv = {Role("KeyValue").Member.Field}.forward(x).split(new[] {{ nKvHead * headDim, nKvHead * headDim }}, -1);");
                    w.Line($"var k = {Attention}.SplitHeads(kv[0], nKvHead, headDim);  // (B, nkv, T, hs)");
                    w.Line($"var v = {Attention}.SplitHeads(kv[1], nKvHead, headDim);  // (B, nkv, T, hs)");
                }
                else
                {
                    w.Line($"var k = {Attention}.SplitHeads({Role("Key").Member.Field}.forward(x), nKvHead, headDim);  // (B, nkv, T, hs)");
                    w.Line($"var v = {Attention}.SplitHeads({Role("Value").Member.Field}.forward(x), nKvHead, headDim);  // (B, nkv, T, hs)");
                }
            }
            if (a.Rotary)
            {
                w.Line("var (cos, sin) = ctx.Rotary ?? throw new global::System.InvalidOperationException(\"rotary tables missing: the stack declares no [RotaryEmbedding]\");");
                w.Line($"q = {RotaryEmbedding}.Apply(q, cos, sin);");
                w.Line($"k = {RotaryEmbedding}.Apply(k, cos, sin);");
            }
            var flags = $"causal: {(a.Causal ? "true" : "false")}" + (a.Scaled ? "" : ", scaled: false");
            w.Line($"var y = {Attention}.ScaledDotProduct(q, k, v, ctx, {flags});  // (B, nh, T, hs)");
            w.Line($"return {Role("Output").Member.Field}.forward({Attention}.MergeHeads(y)).MoveToOuterDisposeScope();");
            w.Close();
        }

        private static void EmitSizes(IndentedWriter w, ModuleSpec spec, AttentionSpec a)
        {
            w.Line("/// <summary>Model size, query heads, key/value heads and head size, checked.</summary>");
            w.Open($"private static (long Dim, long Heads, long KvHeads, long HeadDim) Sizes({spec.ConfigType} config)");
            w.Line($"var dim = {EmitHelpers.Positive(a.Dim, spec.Name)};");
            w.Line($"var heads = {EmitHelpers.Positive(a.Heads, spec.Name)};");
            w.Line(a.KvHeads is { } kv
                ? $"var kvHeads = {DslChecks}.KvHeads(heads, {Literals.String(a.Heads.Display)}, {kv.Expression}, {Literals.String(kv.Display)}, {Literals.String(spec.Name)});"
                : "var kvHeads = heads;");
            w.Line(a.HeadDim is { } hd
                ? $"var headDim = {EmitHelpers.Positive(hd, spec.Name)};"
                : $"var headDim = {DslChecks}.HeadDim(dim, {Literals.String(a.Dim.Display)}, heads, {Literals.String(a.Heads.Display)}, {Literals.String(spec.Name)});");
            w.Line("return (dim, heads, kvHeads, headDim);");
            w.Close();
        }

        /// <summary>(in, out, output split) of a projection, in the locals dim, nHead, nKvHead, headDim.</summary>
        private static (string In, string Out, string? Split) Shape(string role) => role switch
        {
            "Qkv" => ("dim", "(nHead + 2 * nKvHead) * headDim", "new[] { nHead * headDim, nKvHead * headDim, nKvHead * headDim }"),
            "Query" => ("dim", "nHead * headDim", null),
            "Key" or "Value" => ("dim", "nKvHead * headDim", null),
            "KeyValue" => ("dim", "2 * nKvHead * headDim", "new[] { nKvHead * headDim, nKvHead * headDim }"),
            _ => ("nHead * headDim", "dim", null),
        };
    }
}
