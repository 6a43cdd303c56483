using System.Linq;
using PeftDsl.Generators.Model;
using PeftDsl.Generators.Parsing;
using static PeftDsl.Generators.Emit.TypeNames;

namespace PeftDsl.Generators.Emit
{
    /// <summary>[SelfAttention] and [CrossAttention] → projections, head split, RoPE, KV cache, T5's relative
    /// position bias, SDPA, output projection.</summary>
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
            if (a.SlidingWindow is { } sw)
            {
                w.Line($"/// <summary>{sw.Display}: keys more than window − 1 positions back are masked; 0 for none.</summary>");
                w.Line("private readonly long window;");
            }
            if (a.LayerTypes is { } lts)
            {
                w.Line($"/// <summary>{lts.Display}: whether this layer is a sliding-window one.</summary>");
                w.Line("private readonly bool slidingLayer;");
            }
            if (a.Softcap is { } sc)
            {
                w.Line($"/// <summary>{sc.Display}: scores become cap × tanh(scores / cap) before the mask; 0 for none.</summary>");
                w.Line("private readonly double softcap;");
            }
            if (a.QueryScalar is { } qs)
            {
                w.Line($"/// <summary>{qs.Display}^-0.5: the score scaling, in place of head_dim^-0.5.</summary>");
                w.Line("private readonly double scale;");
            }
            if (a.Dropout is { } ad) EmitHelpers.DropoutField(w, ad, "attentionDropout", "on the attention probabilities");
            w.Line();
            foreach (var p in a.Projections)
            {
                w.Line($"/// <summary>{p.Member.Name}: the {p.Role} projection ({p.Layout} layout in the checkpoint).</summary>");
                w.Line($"public readonly {PeftLinear} {p.Member.Field};");
                w.Line();
            }
            if (a.HeadNorms is { } hn)
            {
                w.Line($"/// <summary>{hn.Query.Name}: the {hn.Kind} over each query head, before RoPE.</summary>");
                w.Line($"public readonly {EmitHelpers.Norm(hn.Kind)} {hn.Query.Field};");
                w.Line($"/// <summary>{hn.Key.Name}: the {hn.Kind} over each key head, before RoPE.</summary>");
                w.Line($"public readonly {EmitHelpers.Norm(hn.Kind)} {hn.Key.Field};");
                w.Line();
            }
            if (a.RelativeBias is { } rb)
            {
                w.Line($"/// <summary>{rb.Member.Name}: the relative-position table, in the first layer only; later layers reuse its bias.</summary>");
                w.Line($"public readonly {RelativePositionBias}? {rb.Member.Field};");
                w.Line();
            }

            w.Line("/// <summary>Layer <paramref name=\"layer\"/>'s modules, sized from <paramref name=\"config\"/>; a checkpoint load or the root's initialisation fills the weights.</summary>");
            w.Open($"public {spec.Name}({spec.ConfigType} config, int layer) : base(nameof({spec.Name}))");
            w.Line("var (dim, nHead, nKvHead, headDim) = Sizes(config);");
            w.Line("(this.nHead, this.nKvHead, this.headDim) = (nHead, nKvHead, headDim);");
            if (a.LayerTypes is { } types)
                w.Line($"this.slidingLayer = {DslChecks}.SlidingLayer({types.Expression}, layer, {Literals.String(types.Display)}, {Literals.String(spec.Name)});");
            if (a.SlidingWindow is { } win)
            {
                var windowValue = $"{DslChecks}.Window({win.Expression}, {Literals.String(win.Display)}, {Literals.String(spec.Name)})";
                w.Line(a.LayerTypes is null ? $"this.window = {windowValue};" : $"this.window = this.slidingLayer ? {windowValue} : 0;");
            }
            if (a.Softcap is { } cap)
                w.Line($"this.softcap = {DslChecks}.Softcap({cap.Expression}, {Literals.String(cap.Display)}, {Literals.String(spec.Name)});");
            if (a.QueryScalar is { } scalar)
                w.Line($"this.scale = {DslChecks}.InverseSqrt({scalar.Expression}, {Literals.String(scalar.Display)}, {Literals.String(spec.Name)});");
            if (a.Dropout is { } dropout) w.Line($"this.attentionDropout = {EmitHelpers.Probability(dropout, spec.Name)};");
            foreach (var p in a.Projections)
            {
                var (inF, outF, split) = Shape(p.Role);
                var extra = (split is null ? "" : ", " + split) + (a.Cross ? (split is null ? ", null" : "") + ", crossAttention: true" : "")
                    + (p.Interleaved ? ", interleavedQkv: true" : "");
                w.Line($"this.{p.Member.Field} = new {PeftLinear}({inF}, {outF}, {p.Bias.Expression}, {ProjectionRole}.{p.Role}, layer, {WeightLayout}.{p.Layout}{extra});");
            }
            EmitHelpers.Register(w, a.Projections.Select(p => p.Member));
            if (a.HeadNorms is { } norms)
            {
                w.Line($"this.{norms.Query.Field} = new {EmitHelpers.Norm(norms.Kind)}(headDim, {norms.Eps.Expression});");
                w.Line($"this.{norms.Key.Field} = new {EmitHelpers.Norm(norms.Kind)}(headDim, {norms.Eps.Expression});");
                EmitHelpers.Register(w, new[] { norms.Query, norms.Key });
            }
            if (a.RelativeBias is { } bias)
            {
                w.Open("if (layer == 0)");
                w.Line($"this.{bias.Member.Field} = new {RelativePositionBias}({EmitHelpers.Positive(bias.Buckets, spec.Name)}, nHead, {EmitHelpers.Positive(bias.MaxDistance, spec.Name)}, bidirectional: {(a.Causal ? "false" : "true")});");
                EmitHelpers.Register(w, new[] { bias.Member });
                w.Close();
            }
            w.Close();
            w.Line();

            if (a.Cross) EmitCrossForward(w, spec, a);
            else EmitSelfForward(w, spec, a);
            w.Line();
            EmitHelpers.NoFieldRegistration(w);
            EmitSizes(w, spec, a);
            w.Line();
            w.Open($"internal static void DescribeCheckpoint({spec.ConfigType} config, string prefix, {KeyList} keys, int layer)");
            w.Line("var (dim, nHead, nKvHead, headDim) = Sizes(config);");
            foreach (var p in a.Projections)
            {
                var (inF, outF, _) = Shape(p.Role);
                w.Line($"{CheckpointKeys}.Linear(keys, prefix + {Literals.String(p.Member.Name)}, {inF}, {outF}, {p.Bias.Expression}, {WeightLayout}.{p.Layout});");
            }
            if (a.HeadNorms is { } headNorms)
            {
                w.Line($"{CheckpointKeys}.Norm(keys, prefix + {Literals.String(headNorms.Query.Name)}, {NormKind}.{headNorms.Kind}, headDim);");
                w.Line($"{CheckpointKeys}.Norm(keys, prefix + {Literals.String(headNorms.Key.Name)}, {NormKind}.{headNorms.Kind}, headDim);");
            }
            if (a.RelativeBias is { } r)
                w.Line($"if (layer == 0) {CheckpointKeys}.Embedding(keys, prefix + {Literals.String(r.Member.Name)}, {EmitHelpers.Positive(r.Buckets, spec.Name)}, nHead);");
            w.Close();
            w.Close();
            return w.ToString();
        }

        /// <summary>The attention-probability dropout argument of ScaledDotProduct, when the declaration has one.</summary>
        private static string DropoutArgument(AttentionSpec a) =>
            a.Dropout is null ? "" : $", dropout: {BaseDropout}.Rate(this.attentionDropout, this.training, ctx)";

        private static void EmitSelfForward(IndentedWriter w, ModuleSpec spec, AttentionSpec a)
        {
            ProjectionSpec Role(string role) => a.Projections.First(p => p.Role == role);
            w.Line("/// <param name=\"x\">(B, T, C) hidden states.</param>");
            w.Line("/// <returns>(B, T, C)</returns>");
            w.Open($"public override {Tensor} forward({Tensor} x, {ForwardContext} ctx)");
            w.Line($"using var scope = {Torch}.NewDisposeScope();");
            if (a.Projections.FirstOrDefault(p => p.Role == "Qkv") is { Interleaved: true } fused)
            {
                w.Line($"var (q, k, v) = {Attention}.SplitInterleaved(this.{fused.Member.Field}.forward(x, ctx.Routing), nHead, nKvHead, headDim);  // per group [q… | k | v]");
            }
            else if (a.Projections.Any(p => p.Role == "Qkv"))
            {
                w.Line($"var qkv = this.{Role("Qkv").Member.Field}.forward(x, ctx.Routing).split(new[] {{ nHead * headDim, nKvHead * headDim, nKvHead * headDim }}, -1);");
                w.Line($"var q = {Attention}.SplitHeads(qkv[0], nHead, headDim);    // (B, nh, T, hs)");
                w.Line($"var k = {Attention}.SplitHeads(qkv[1], nKvHead, headDim);  // (B, nkv, T, hs)");
                w.Line($"var v = {Attention}.SplitHeads(qkv[2], nKvHead, headDim);  // (B, nkv, T, hs)");
            }
            else
            {
                // Query, key and value read the same input: one call lets their LoRA A matrices run as one matmul.
                var shared = new[] { Role("Query") }.Concat(KeyValueProjections(a)).Select(p => "this." + p.Member.Field);
                w.Line($"var qkv = {PeftLinear}.ProjectShared(x, ctx.Routing, {string.Join(", ", shared)});");
                w.Line($"var q = {Attention}.SplitHeads(qkv[0], nHead, headDim);    // (B, nh, T, hs)");
                EmitKeysValues(w, a, "qkv", 1);
            }
            if (a.HeadNorms is { } hn)
            {
                w.Line($"q = this.{hn.Query.Field}.forward(q);  // over head_dim, per head");
                w.Line($"k = this.{hn.Key.Field}.forward(k);");
            }
            if (a.Rotary)
            {
                w.Line($"var (cos, sin) = ctx.RotaryTables(headDim, nameof({spec.Name}){(a.LayerTypes is null ? "" : ", local: this.slidingLayer")});");
                w.Line($"q = {RotaryEmbedding}.Apply(q, cos, sin);");
                w.Line($"k = {RotaryEmbedding}.Apply(k, cos, sin);");
            }
            w.Line("if (ctx.Cache is { } cache) (k, v) = cache.AppendSelf(this, k, v);  // (B, nkv, past + T, hs)");
            var window = a.SlidingWindow is not null ? ", window: this.window" : "";
            var selfMask = $"ctx.SelfAttentionMask(causal: {(a.Causal ? "true" : "false")}{window})";
            var scaled = (a.Scaled ? "" : ", scaled: false") + DropoutArgument(a)
                + (a.QueryScalar is null ? "" : ", scale: this.scale") + (a.Softcap is null ? "" : ", softcap: this.softcap");
            if (a.RelativeBias is { } rb)
            {
                // The first layer folds the pass's mask into the shared bias once; every layer passes it as the mask.
                w.Line($"var bias = this.{rb.Member.Field} is {{ }} table  // (1, nh, T, past + T), masked");
                w.Line($"    ? ctx.SharePositionBias({Attention}.FoldMask(table.Compute(ctx.PastLength, q.shape[2], k.shape[2]), {selfMask}, q.dtype))");
                w.Line("    : ctx.PositionBias;");
                w.Line($"var y = {Attention}.ScaledDotProduct(q, k, v, default{scaled}, bias: bias);  // (B, nh, T, hs)");
            }
            else
            {
                w.Line($"var y = {Attention}.ScaledDotProduct(q, k, v, {selfMask}{scaled});  // (B, nh, T, hs)");
            }
            w.Line($"return this.{Role("Output").Member.Field}.forward({Attention}.MergeHeads(y), ctx.Routing).MoveToOuterDisposeScope();");
            w.Close();
        }

        private static void EmitCrossForward(IndentedWriter w, ModuleSpec spec, AttentionSpec a)
        {
            var query = a.Projections.First(p => p.Role == "Query").Member.Field;
            var output = a.Projections.First(p => p.Role == "Output").Member.Field;
            w.Line("/// <param name=\"x\">(B, T, C) decoder hidden states; keys and values come from the encoder output in <paramref name=\"ctx\"/>.</param>");
            w.Line("/// <returns>(B, T, C)</returns>");
            w.Open($"public override {Tensor} forward({Tensor} x, {ForwardContext} ctx)");
            w.Line($"using var scope = {Torch}.NewDisposeScope();");
            w.Line($"var encoder = ctx.EncoderHidden ?? throw new global::System.InvalidOperationException({Literals.String(spec.Name + " needs the encoder output: use it in a decoder stack")});");
            w.Line($"var q = {Attention}.SplitHeads(this.{query}.forward(x, ctx.Routing), nHead, headDim);  // (B, nh, T, hs)");
            w.Line("// The encoder's keys and values do not change while decoding: compute them once per sequence.");
            w.Line("var (k, v) = ctx.Cache is { } cache ? cache.Cross(this, () => EncoderKeysValues(encoder, ctx.Routing)) : EncoderKeysValues(encoder, ctx.Routing);");
            w.Line($"var y = {Attention}.ScaledDotProduct(q, k, v, ctx.CrossAttentionMask{(a.Scaled ? "" : ", scaled: false")}{DropoutArgument(a)});  // (B, nh, T, hs)");
            w.Line($"return this.{output}.forward({Attention}.MergeHeads(y), ctx.Routing).MoveToOuterDisposeScope();");
            w.Close();
            w.Line();
            w.Line("/// <returns>keys and values (B, nkv, S, hs) of the encoder output.</returns>");
            w.Open($"private ({Tensor} K, {Tensor} V) EncoderKeysValues({Tensor} encoder, {AdapterRouting} routing)");
            var keyValues = KeyValueProjections(a).Select(p => "this." + p.Member.Field);
            w.Line($"var kv = {PeftLinear}.ProjectShared(encoder, routing, {string.Join(", ", keyValues)});");
            EmitKeysValues(w, a, "kv", 0);
            w.Line("return (k, v);");
            w.Close();
        }

        /// <summary>The key/value projections in output order: one fused KeyValue, or Key then Value.</summary>
        private static ProjectionSpec[] KeyValueProjections(AttentionSpec a) =>
            a.Projections.FirstOrDefault(p => p.Role == "KeyValue") is { } kv
                ? new[] { kv }
                : new[] { a.Projections.First(p => p.Role == "Key"), a.Projections.First(p => p.Role == "Value") };

        /// <summary>k and v from the projected outputs <c>{outputs}[first…]</c>.</summary>
        private static void EmitKeysValues(IndentedWriter w, AttentionSpec a, string outputs, int first)
        {
            if (a.Projections.Any(p => p.Role == "KeyValue"))
            {
                w.Line($"var kvParts = {outputs}[{first}].split(new[] {{ nKvHead * headDim, nKvHead * headDim }}, -1);");
                w.Line($"var k = {Attention}.SplitHeads(kvParts[0], nKvHead, headDim);  // (B, nkv, T, hs)");
                w.Line($"var v = {Attention}.SplitHeads(kvParts[1], nKvHead, headDim);  // (B, nkv, T, hs)");
                return;
            }
            w.Line($"var k = {Attention}.SplitHeads({outputs}[{first}], nKvHead, headDim);  // (B, nkv, T, hs)");
            w.Line($"var v = {Attention}.SplitHeads({outputs}[{first + 1}], nKvHead, headDim);  // (B, nkv, T, hs)");
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
