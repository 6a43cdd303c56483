using PeftDsl.Generators.Model;
using PeftDsl.Generators.Parsing;
using static PeftDsl.Generators.Emit.TypeNames;

namespace PeftDsl.Generators.Emit
{
    /// <summary>[CausalLM] → body + LM head, loading, checkpoint rules and listing, typed target names.</summary>
    internal static class CausalLmEmitter
    {
        public static string Emit(ModuleSpec spec)
        {
            var c = spec.CausalLm!;
            var body = c.Body.Field;
            var w = EmitHelpers.Begin(spec.Namespace);
            w.Open($"partial class {spec.Name} : {CausalLanguageModel}");
            w.Line("/// <summary>The config the model was built from.</summary>");
            w.Line($"public {spec.ConfigType} Config {{ get; }}");
            w.Line();
            w.Line($"/// <summary>{c.Body.Name}: the transformer stack.</summary>");
            w.Line($"public readonly {c.BodyType.FullName} {body};");
            w.Line();
            w.Line($"/// <summary>{c.Head.Head.Name}; shares the token embedding's weight when tied.</summary>");
            w.Line($"public readonly {LmHead} {c.Head.Head.Field};");
            w.Line();

            w.Line("/// <summary>The model for <paramref name=\"config\"/>, with random weights unless <paramref name=\"init\"/> says otherwise.</summary>");
            w.Line($"/// <param name=\"config\">Sizes and options, as config.json gives them.</param>");
            w.Line($"/// <param name=\"init\"><see cref=\"{WeightInit}.None\"/> leaves weights uninitialised for a checkpoint to fill.</param>");
            w.Open($"public {spec.Name}({spec.ConfigType} config, {WeightInit} init = {WeightInit}.Normal) : base(nameof({spec.Name}))");
            w.Line("this.Config = config;");
            w.Line($"this.{body} = new {c.BodyType.FullName}(config);");
            RootEmitter.ConstructHead(w, c.Head);
            EmitHelpers.Register(w, new[] { c.Body });
            RootEmitter.RegisterHead(w, c.Head);
            w.Line($"{WeightInitializer}.Apply(this, init);");
            w.Close();
            w.Line();

            RootEmitter.Rules(w, c.ModelType, c.Head, c.IgnoreKeys, new string[0], c.Body.Name);

            w.Line("/// <inheritdoc/>");
            w.Line($"protected override {LmHead} Head => this.{c.Head.Head.Field};");
            w.Line();
            w.Line("/// <returns>(B, T, C) final hidden states of the body.</returns>");
            w.Line($"protected override {Tensor} Hidden({Tensor} inputIds, {StackInputs} inputs) => this.{body}.forward(inputIds, inputs);");
            w.Line();
            w.Line("/// <inheritdoc/>");
            w.Line($"public override long? PositionLimit => this.{body}.PositionLimit;");
            w.Line();
            w.Line("/// <inheritdoc/>");
            w.Line($"public override long? ContextLength => this.{body}.ContextLength;");
            w.Line();
            w.Line("/// <inheritdoc/>");
            w.Line($"public override long? LongRopeFrom => this.{body}.LongRopeFrom;");
            w.Line();

            RootEmitter.FromPretrained(w, spec, c.ModelType, c.AlsoReads);
            RootEmitter.CheckpointKeys(w, spec, c.Head, $"{c.BodyType.FullName}.EmbeddingShape(config)",
                () => w.Line($"{c.BodyType.FullName}.DescribeCheckpoint(config, {Literals.String(c.Body.Name + ".")}, keys);"));
            RootEmitter.Targets(w, c.Targets);
            w.Close();
            return w.ToString();
        }
    }
}
