using System.Linq;
using PeftDsl.Generators.Model;
using PeftDsl.Generators.Parsing;
using static PeftDsl.Generators.Emit.TypeNames;

namespace PeftDsl.Generators.Emit
{
    /// <summary>[TransformerBlock] → pre-norm residual sublayers, each followed by its adapter site.</summary>
    internal static class BlockEmitter
    {
        public static string Emit(ModuleSpec spec)
        {
            var b = spec.Block!;
            var norm = EmitHelpers.Norm(b.NormKind);
            var w = EmitHelpers.Begin(spec.Namespace);
            w.Open($"partial class {spec.Name} : {EmitHelpers.ModuleBase(Tensor, ForwardContext, Tensor)}, {IBlockModule}, {IPeftSiteOwner}");
            // Parallel sublayers may share one norm (GPT-J, Falcon): one field per distinct norm.
            var norms = b.Sublayers.Select(s => s.Norm).GroupBy(n => n.Name).Select(g => g.First()).ToList();
            bool FirstUse(SublayerSpec s) => b.Sublayers.First(o => o.Norm.Name == s.Norm.Name) == s;
            foreach (var s in b.Sublayers)
            {
                if (FirstUse(s))
                {
                    var users = string.Join(" and ", b.Sublayers.Where(o => o.Norm.Name == s.Norm.Name).Select(o => o.Member.Name));
                    w.Line($"/// <summary>{s.Norm.Name}: the norm before {users}.</summary>");
                    w.Line($"public readonly {norm} {s.Norm.Field};");
                }
                if (s.PostNorm is { } post)
                {
                    w.Line($"/// <summary>{post.Name}: the norm on {s.Member.Name}'s output, before the residual add.</summary>");
                    w.Line($"public readonly {norm} {post.Field};");
                }
                w.Line($"/// <summary>{s.Member.Name}: the {(s.Kind switch { ModuleKind.FeedForward => "feed-forward", ModuleKind.CrossAttention => "cross-attention", _ => "self-attention" })} sublayer.</summary>");
                w.Line($"public readonly {s.Module.FullName} {s.Member.Field};");
            }
            w.Line();
            foreach (var s in b.Sublayers)
            {
                w.Line($"/// <summary>Adapter site after {s.Member.Name}, before the residual add (registered as {s.AdapterSite}).</summary>");
                w.Line($"public readonly {AdapterSite} {Pascal(s.AdapterSite)};");
                w.Line();
            }
            foreach (var s in b.Sublayers)
                if (s.Dropout is { } d) EmitHelpers.DropoutField(w, d, DropoutField(s), $"on what {s.Member.Name} adds to the residual stream");
            if (b.Sublayers.Any(s => s.Dropout is not null)) w.Line();
            w.Line("/// <summary>This block's index in the stack.</summary>");
            w.Line("public int Layer { get; }");
            w.Line();
            var parallel = b.Parallel.Expression;
            var configParallel = parallel != "true" && parallel != "false";
            if (configParallel)
            {
                w.Line($"/// <summary>{b.Parallel.Display}: x + attn(norm(x)) + mlp(norm(x)) instead of one sublayer after the other.</summary>");
                w.Line("private readonly bool parallelResidual;");
                w.Line();
            }

            w.Line("/// <summary>Layer <paramref name=\"layer\"/>'s modules, sized from <paramref name=\"config\"/>; a checkpoint load or the root's initialisation fills the weights.</summary>");
            w.Open($"public {spec.Name}({spec.ConfigType} config, int layer) : base(nameof({spec.Name}))");
            w.Line("this.Layer = layer;");
            if (configParallel) w.Line($"this.parallelResidual = {parallel};");
            w.Line($"var dim = {EmitHelpers.Positive(b.Dim, spec.Name)};");
            foreach (var s in b.Sublayers)
            {
                if (FirstUse(s)) w.Line($"this.{s.Norm.Field} = new {norm}(dim, {b.NormEps.Expression});");
                w.Line($"this.{s.Member.Field} = new {s.Module.FullName}(config, layer);");
                if (s.PostNorm is { } post) w.Line($"this.{post.Field} = new {norm}(dim, {b.NormEps.Expression});");
                w.Line($"this.{Pascal(s.AdapterSite)} = new {AdapterSite}({Literals.String(s.AdapterSite)}, layer);");
                if (s.Dropout is { } d) w.Line($"this.{DropoutField(s)} = {EmitHelpers.Probability(d, spec.Name)};");
            }
            EmitHelpers.Register(w, b.Sublayers.SelectMany(s => s.PostNorm is { } p ? new[] { s.Norm, s.Member, p } : new[] { s.Norm, s.Member }).GroupBy(m => m.Name).Select(g => g.First()));
            foreach (var s in b.Sublayers)
                w.Line($"register_module({Literals.String(s.AdapterSite)}, this.{Pascal(s.AdapterSite)});");
            w.Close();
            w.Line();

            w.Line("/// <param name=\"x\">(B, T, C) hidden states.</param>");
            w.Line("/// <returns>(B, T, C)</returns>");
            w.Open($"public override {Tensor} forward({Tensor} x, {ForwardContext} ctx)");
            w.Line($"using var scope = {Torch}.NewDisposeScope();");
            // The adapter site sees the sublayer's output and its (normed) input: a parallel adapter runs beside it.
            if (configParallel) w.Open("if (!this.parallelResidual)");
            if (parallel != "true")
            {
                var first = true;
                foreach (var s in b.Sublayers)
                {
                    w.Line($"{(first ? "var " : "")}h = this.{s.Norm.Field}.forward(x);");
                    w.Line($"x = x + {Residual(s, $"this.{Pascal(s.AdapterSite)}.forward({Output(s, "h")}, h, ctx)")};");
                    first = false;
                }
                w.Line("return x.MoveToOuterDisposeScope();");
            }
            if (configParallel) w.Close();
            if (parallel != "false")
            {
                // Every sublayer reads the block input; a shared norm is computed once.
                w.Line("var y = x;");
                foreach (var n in norms) w.Line($"var {Local(n)} = this.{n.Field}.forward(x);");
                foreach (var s in b.Sublayers)
                    w.Line($"y = y + {Residual(s, $"this.{Pascal(s.AdapterSite)}.forward({Output(s, Local(s.Norm))}, {Local(s.Norm)}, ctx)")};");
                w.Line("return y.MoveToOuterDisposeScope();");
            }
            w.Close();
            w.Line();

            EmitHelpers.NoFieldRegistration(w);
            w.Line("/// <inheritdoc/>");
            w.Open($"public {SiteList} Sites(string path)");
            foreach (var s in b.Sublayers)
                w.Line($"yield return new {PeftSite}({SiteKind}.Adapter, this.{Pascal(s.AdapterSite)}.Name, {ModulePath}.Join(path, this.{Pascal(s.AdapterSite)}.Name), this.Layer);");
            w.Close();
            w.Line();

            w.Open($"internal static void DescribeCheckpoint({spec.ConfigType} config, string prefix, {KeyList} keys, int layer)");
            w.Line($"var dim = {EmitHelpers.Positive(b.Dim, spec.Name)};");
            foreach (var s in b.Sublayers)
            {
                if (FirstUse(s)) w.Line($"{CheckpointKeys}.Norm(keys, prefix + {Literals.String(s.Norm.Name)}, {NormKind}.{b.NormKind}, dim);");
                w.Line($"{s.Module.FullName}.DescribeCheckpoint(config, prefix + {Literals.String(s.Member.Name + ".")}, keys, layer);");
                if (s.PostNorm is { } post) w.Line($"{CheckpointKeys}.Norm(keys, prefix + {Literals.String(post.Name)}, {NormKind}.{b.NormKind}, dim);");
            }
            w.Close();
            w.Close();
            return w.ToString();
        }

        /// <summary>The sublayer's output on <paramref name="input"/>, through its post-norm when it has one.</summary>
        private static string Output(SublayerSpec s, string input)
        {
            var output = $"this.{s.Member.Field}.forward({input}, ctx)";
            return s.PostNorm is { } post ? $"this.{post.Field}.forward({output})" : output;
        }

        /// <summary>What a sublayer adds to the residual stream: its site's output, through its dropout if it has one.</summary>
        private static string Residual(SublayerSpec s, string output) => s.Dropout is null ? output : EmitHelpers.Dropout(output, DropoutField(s));

        /// <summary>The field holding a sublayer's residual dropout: attnDropout.</summary>
        private static string DropoutField(SublayerSpec s) => s.Member.Field.TrimStart('@') + "Dropout";

        /// <summary>The local holding a norm's output in the parallel form: h_input_layernorm.</summary>
        private static string Local(Member norm) => "h_" + norm.Field.TrimStart('@');

        /// <summary>attention_adapter → AttentionAdapter: site fields are C# names, not checkpoint names.</summary>
        public static string Pascal(string snake) =>
            string.Concat(snake.Split('_').Where(p => p.Length > 0).Select(p => char.ToUpperInvariant(p[0]) + p.Substring(1)));
    }
}
