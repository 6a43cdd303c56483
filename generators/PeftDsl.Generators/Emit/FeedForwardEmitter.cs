using System.Linq;
using PeftDsl.Generators.Model;
using PeftDsl.Generators.Parsing;
using static PeftDsl.Generators.Emit.TypeNames;

namespace PeftDsl.Generators.Emit
{
    /// <summary>[FeedForward] → down(act(up(x))) or, with a gate, down(act(gate(x)) × up(x)).</summary>
    internal static class FeedForwardEmitter
    {
        public static string Emit(ModuleSpec spec)
        {
            var f = spec.FeedForward!;
            var gate = f.Projections.FirstOrDefault(p => p.Role == "Gate");
            var up = f.Projections.First(p => p.Role == "Up");
            var down = f.Projections.First(p => p.Role == "Down");
            var w = EmitHelpers.Begin(spec.Namespace);
            w.Open($"partial class {spec.Name} : {EmitHelpers.ModuleBase(Tensor, Tensor)}");
            w.Line($"private readonly {Func}<{Tensor}, {Tensor}> act;");
            w.Line();
            foreach (var p in f.Projections)
            {
                w.Line($"/// <summary>{p.Member.Name}: the {p.Role} projection ({p.Layout} layout in the checkpoint).</summary>");
                w.Line($"public readonly {PeftLinear} {p.Member.Field};");
                w.Line();
            }
            w.Open($"public {spec.Name}({spec.ConfigType} config, int? layer) : base(nameof({spec.Name}))");
            w.Line("var (dim, inner) = Sizes(config);");
            w.Line($"act = {Activations}.Resolve({f.Activation.Expression}, {Literals.String(spec.Name + " (" + f.Activation.Display + ")")});");
            foreach (var p in f.Projections)
            {
                var (inF, outF) = Shape(p.Role);
                w.Line($"{p.Member.Field} = new {PeftLinear}({inF}, {outF}, {p.Bias.Expression}, {ProjectionRole}.{p.Role}, layer, {WeightLayout}.{p.Layout});");
            }
            EmitHelpers.Register(w, f.Projections.Select(p => p.Member));
            w.Close();
            w.Line();

            w.Line("/// <param name=\"x\">(B, T, C) hidden states.</param>");
            w.Line("/// <returns>(B, T, C)</returns>");
            w.Open($"public override {Tensor} forward({Tensor} x)");
            w.Line($"using var scope = {Torch}.NewDisposeScope();");
            w.Line(gate is null
                ? $"var h = act({up.Member.Field}.forward(x));  // (B, T, inner)"
                : $"var h = act({gate.Member.Field}.forward(x)) * {up.Member.Field}.forward(x);  // (B, T, inner)");
            w.Line($"return {down.Member.Field}.forward(h).MoveToOuterDisposeScope();");
            w.Close();
            w.Line();

            w.Open($"private static (long Dim, long Inner) Sizes({spec.ConfigType} config)");
            w.Line($"return ({EmitHelpers.Positive(f.Dim, spec.Name)}, {EmitHelpers.Positive(f.Inner, spec.Name)});");
            w.Close();
            w.Line();
            w.Open($"internal static void DescribeCheckpoint({spec.ConfigType} config, string prefix, {KeyList} keys)");
            w.Line("var (dim, inner) = Sizes(config);");
            foreach (var p in f.Projections)
            {
                var (inF, outF) = Shape(p.Role);
                w.Line($"{CheckpointKeys}.Linear(keys, prefix + {Literals.String(p.Member.Name)}, {inF}, {outF}, {p.Bias.Expression}, {WeightLayout}.{p.Layout});");
            }
            w.Close();
            w.Close();
            return w.ToString();
        }

        private static (string In, string Out) Shape(string role) => role == "Down" ? ("inner", "dim") : ("dim", "inner");
    }
}
