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
            foreach (var s in b.Sublayers)
            {
                w.Line($"public readonly {norm} {s.Norm.Field};");
                w.Line($"public readonly {s.Module.FullName} {s.Member.Field};");
            }
            w.Line();
            foreach (var s in b.Sublayers)
            {
                w.Line($"/// <summary>Adapter site after {s.Member.Name}, before the residual add (registered as {s.AdapterSite}).</summary>");
                w.Line($"public readonly {AdapterSite} {Pascal(s.AdapterSite)};");
                w.Line();
            }
            w.Line("/// <summary>This block's index in the stack.</summary>");
            w.Line("public int Layer { get; }");
            w.Line();

            w.Open($"public {spec.Name}({spec.ConfigType} config, int layer) : base(nameof({spec.Name}))");
            w.Line("this.Layer = layer;");
            w.Line($"var dim = {EmitHelpers.Positive(b.Dim, spec.Name)};");
            foreach (var s in b.Sublayers)
            {
                w.Line($"this.{s.Norm.Field} = new {norm}(dim, {b.NormEps.Expression});");
                w.Line($"this.{s.Member.Field} = new {s.Module.FullName}(config, layer);");
                w.Line($"this.{Pascal(s.AdapterSite)} = new {AdapterSite}({Literals.String(s.AdapterSite)}, layer);");
            }
            EmitHelpers.Register(w, b.Sublayers.SelectMany(s => new[] { s.Norm, s.Member }));
            foreach (var s in b.Sublayers)
                w.Line($"register_module({Literals.String(s.AdapterSite)}, this.{Pascal(s.AdapterSite)});");
            w.Close();
            w.Line();

            w.Line("/// <param name=\"x\">(B, T, C) hidden states.</param>");
            w.Line("/// <returns>(B, T, C)</returns>");
            w.Open($"public override {Tensor} forward({Tensor} x, {ForwardContext} ctx)");
            w.Line($"using var scope = {Torch}.NewDisposeScope();");
            // The adapter site sees the sublayer's output and its (normed) input: a parallel adapter runs beside it.
            var first = true;
            foreach (var s in b.Sublayers)
            {
                w.Line($"{(first ? "var " : "")}h = this.{s.Norm.Field}.forward(x);");
                w.Line($"x = x + this.{Pascal(s.AdapterSite)}.forward(this.{s.Member.Field}.forward(h, ctx), h, ctx);");
                first = false;
            }
            w.Line("return x.MoveToOuterDisposeScope();");
            w.Close();
            w.Line();

            EmitHelpers.NoFieldRegistration(w);
            w.Open($"public {SiteList} Sites(string path)");
            foreach (var s in b.Sublayers)
                w.Line($"yield return new {PeftSite}({SiteKind}.Adapter, this.{Pascal(s.AdapterSite)}.Name, {ModulePath}.Join(path, this.{Pascal(s.AdapterSite)}.Name), this.Layer);");
            w.Close();
            w.Line();

            w.Open($"internal static void DescribeCheckpoint({spec.ConfigType} config, string prefix, {KeyList} keys, int layer)");
            w.Line($"var dim = {EmitHelpers.Positive(b.Dim, spec.Name)};");
            foreach (var s in b.Sublayers)
            {
                w.Line($"{CheckpointKeys}.Norm(keys, prefix + {Literals.String(s.Norm.Name)}, {NormKind}.{b.NormKind}, dim);");
                w.Line($"{s.Module.FullName}.DescribeCheckpoint(config, prefix + {Literals.String(s.Member.Name + ".")}, keys, layer);");
            }
            w.Close();
            w.Close();
            return w.ToString();
        }

        /// <summary>attention_adapter → AttentionAdapter: site fields are C# names, not checkpoint names.</summary>
        public static string Pascal(string snake) =>
            string.Concat(snake.Split('_').Where(p => p.Length > 0).Select(p => char.ToUpperInvariant(p[0]) + p.Substring(1)));
    }
}
