using System.Linq;
using PeftDsl.Generators.Model;
using PeftDsl.Generators.Parsing;
using static PeftDsl.Generators.Emit.TypeNames;

namespace PeftDsl.Generators.Emit
{
    /// <summary>[FeedForward] → down(act(up(x))) or, with a gate, down(act(gate(x)) × up(x)). Projections declared
    /// with <c>When</c> exist only when their flag holds; the constructor resolves which one fills each role.</summary>
    internal static class FeedForwardEmitter
    {
        public static string Emit(ModuleSpec spec)
        {
            var f = spec.FeedForward!;
            var conditional = f.Projections.Any(p => p.When is not null);
            var w = EmitHelpers.Begin(spec.Namespace);
            w.Open($"partial class {spec.Name} : {EmitHelpers.ModuleBase(Tensor, ForwardContext, Tensor)}");
            w.Line($"private readonly {Func}<{Tensor}, {Tensor}> act;");
            if (f.Dropout is { } fd) EmitHelpers.DropoutField(w, fd, "dropout", "on the inner activation");
            if (conditional)
            {
                w.Line($"private readonly {PeftLinear}? gateProjection;");
                w.Line($"private readonly {PeftLinear} upProjection;");
                w.Line($"private readonly {PeftLinear} downProjection;");
            }
            w.Line();
            foreach (var p in f.Projections)
            {
                var when = p.When is null ? "" : $"; present when {p.When.Display}";
                w.Line($"/// <summary>{p.Member.Name}: the {p.Role} projection ({p.Layout} layout in the checkpoint{when}).</summary>");
                w.Line($"public readonly {PeftLinear}{(p.When is null ? "" : "?")} {p.Member.Field};");
                w.Line();
            }
            w.Line("/// <summary>Layer <paramref name=\"layer\"/>'s modules, sized from <paramref name=\"config\"/>; a checkpoint load or the root's initialisation fills the weights.</summary>");
            w.Open($"public {spec.Name}({spec.ConfigType} config, int layer) : base(nameof({spec.Name}))");
            w.Line("var (dim, inner) = Sizes(config);");
            w.Line($"this.act = {Activations}.Resolve({f.Activation.Expression}, {Literals.String(spec.Name + " (" + f.Activation.Display + ")")});");
            if (f.Dropout is { } dropout) w.Line($"this.dropout = {EmitHelpers.Probability(dropout, spec.Name)};");
            foreach (var p in f.Projections)
            {
                var (inF, outF) = Shape(p.Role);
                var create = $"this.{p.Member.Field} = new {PeftLinear}({inF}, {outF}, {p.Bias.Expression}, {ProjectionRole}.{p.Role}, layer, {WeightLayout}.{p.Layout});";
                if (p.When is null)
                {
                    w.Line(create);
                    EmitHelpers.Register(w, new[] { p.Member });
                }
                else
                {
                    w.Open($"if ({p.When.Expression})");
                    w.Line(create);
                    EmitHelpers.Register(w, new[] { p.Member });
                    w.Close();
                }
            }
            if (conditional)
            {
                w.Line($"this.gateProjection = {ConditionalProjections}.AtMostOne({Candidates(spec, f, "Gate")});");
                w.Line($"this.upProjection = {ConditionalProjections}.One({Candidates(spec, f, "Up")});");
                w.Line($"this.downProjection = {ConditionalProjections}.One({Candidates(spec, f, "Down")});");
            }
            w.Close();
            w.Line();

            w.Line("/// <param name=\"x\">(B, T, C) hidden states.</param>");
            w.Line("/// <param name=\"ctx\">The stack's forward context; its routing reaches every projection.</param>");
            w.Line("/// <returns>(B, T, C)</returns>");
            w.Open($"public override {Tensor} forward({Tensor} x, {ForwardContext} ctx)");
            w.Line($"using var scope = {Torch}.NewDisposeScope();");
            if (conditional)
            {
                w.Line($"{Tensor} h;  // (B, T, inner)");
                w.Open("if (this.gateProjection is { } gate)");
                w.Line($"var gateUp = {PeftLinear}.ProjectShared(x, ctx.Routing, gate, this.upProjection);");
                w.Line("h = this.act(gateUp[0]) * gateUp[1];");
                w.Close();
                w.Line("else h = this.act(this.upProjection.forward(x, ctx.Routing));");
                if (f.Dropout is not null) w.Line($"h = {EmitHelpers.Dropout("h", "dropout")};");
                w.Line("return this.downProjection.forward(h, ctx.Routing).MoveToOuterDisposeScope();");
            }
            else
            {
                var gate = f.Projections.FirstOrDefault(p => p.Role == "Gate");
                var fused = f.Projections.FirstOrDefault(p => p.Role == "GateUp");
                var up = f.Projections.FirstOrDefault(p => p.Role == "Up")?.Member.Field;
                var down = f.Projections.First(p => p.Role == "Down").Member.Field;
                if (fused is not null)
                {
                    w.Line($"var gateUp = this.{fused.Member.Field}.forward(x, ctx.Routing).chunk(2, -1);  // [gate | up]");
                    w.Line("var h = this.act(gateUp[0]) * gateUp[1];  // (B, T, inner)");
                }
                else if (gate is null)
                {
                    w.Line($"var h = this.act(this.{up}.forward(x, ctx.Routing));  // (B, T, inner)");
                }
                else
                {
                    // Gate and up read the same input: one call lets their LoRA A matrices run as one matmul.
                    w.Line($"var gateUp = {PeftLinear}.ProjectShared(x, ctx.Routing, this.{gate.Member.Field}, this.{up});");
                    w.Line("var h = this.act(gateUp[0]) * gateUp[1];  // (B, T, inner)");
                }
                if (f.Dropout is not null) w.Line($"h = {EmitHelpers.Dropout("h", "dropout")};");
                w.Line($"return this.{down}.forward(h, ctx.Routing).MoveToOuterDisposeScope();");
            }
            w.Close();
            w.Line();

            EmitHelpers.NoFieldRegistration(w);
            w.Open($"private static (long Dim, long Inner) Sizes({spec.ConfigType} config)");
            w.Line($"return ({EmitHelpers.Positive(f.Dim, spec.Name)}, {EmitHelpers.Positive(f.Inner, spec.Name)});");
            w.Close();
            w.Line();
            w.Open($"internal static void DescribeCheckpoint({spec.ConfigType} config, string prefix, {KeyList} keys, int layer)");
            w.Line("var (dim, inner) = Sizes(config);");
            foreach (var p in f.Projections)
            {
                var (inF, outF) = Shape(p.Role);
                var condition = p.When is null ? "" : $"if ({p.When.Expression}) ";
                w.Line($"{condition}{CheckpointKeys}.Linear(keys, prefix + {Literals.String(p.Member.Name)}, {inF}, {outF}, {p.Bias.Expression}, {WeightLayout}.{p.Layout});");
            }
            w.Close();
            w.Close();
            return w.ToString();
        }

        private static string Candidates(ModuleSpec spec, FeedForwardSpec f, string role) =>
            string.Join(", ", new[] { Literals.String(spec.Name), Literals.String(role) }
                .Concat(f.Projections.Where(p => p.Role == role).Select(p => $"(this.{p.Member.Field}, {Literals.String(p.Member.Name)})")));

        private static (string In, string Out) Shape(string role) => role switch
        {
            "Down" => ("inner", "dim"),
            "GateUp" => ("dim", "2 * inner"),
            _ => ("dim", "inner"),
        };
    }
}
