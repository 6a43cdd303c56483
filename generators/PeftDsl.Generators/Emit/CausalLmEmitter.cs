using System.Linq;
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
            var head = c.Head.Field;
            var w = EmitHelpers.Begin(spec.Namespace);
            w.Open($"partial class {spec.Name} : {CausalLanguageModel}");
            w.Line($"public {spec.ConfigType} Config {{ get; }}");
            w.Line();
            w.Line($"public readonly {c.BodyType.FullName} {body};");
            w.Line();
            w.Line($"/// <summary>{c.Head.Name}; shares {c.Body.Name}.{c.TokenEmbeddingField}'s weight when tied.</summary>");
            w.Line($"public readonly {LmHead} {head};");
            w.Line();

            w.Line($"/// <param name=\"init\"><see cref=\"{WeightInit}.None\"/> leaves weights uninitialised for a checkpoint to fill.</param>");
            w.Open($"public {spec.Name}({spec.ConfigType} config, {WeightInit} init = {WeightInit}.Normal) : base(nameof({spec.Name}))");
            w.Line("Config = config;");
            w.Line($"{body} = new {c.BodyType.FullName}(config);");
            var tied = $"{LmHead}.Tied({body}.{c.TokenEmbeddingField})";
            var untied = $"new {LmHead}({body}.{c.TokenEmbeddingField}.Dim, {body}.{c.TokenEmbeddingField}.Count)";
            // A literal tie is decided here, so consumers never compile constant conditions (CS0162).
            switch (c.Tie.Expression)
            {
                case "true": w.Line($"{head} = {tied};"); break;
                case "false": w.Line($"{head} = {untied};"); break;
                default:
                    w.Line($"{head} = {c.Tie.Expression}");
                    w.Line($"    ? {tied}");
                    w.Line($"    : {untied};");
                    break;
            }
            EmitHelpers.Register(w, new[] { c.Body });
            w.Line($"if (!{head}.IsTied) register_module({Literals.String(c.Head.Name)}, {head});");
            w.Line($"{WeightInitializer}.Apply(this, init);");
            w.Close();
            w.Line();

            w.Line($"public override string ModelType => {Literals.String(c.ModelType)};");
            w.Line();
            w.Line($"public override {CheckpointRules} CheckpointRules => new(");
            w.Line($"    {head}.IsTied ? new[] {{ {Literals.String(c.Head.Name + ".weight")} }} : global::System.Array.Empty<string>(),");
            w.Line(c.IgnoreKeys.Count == 0
                ? "    global::System.Array.Empty<string>(),"
                : $"    new[] {{ {string.Join(", ", c.IgnoreKeys.Select(Literals.String))} }},");
            w.Line($"    {Literals.String(c.Body.Name)});");
            w.Line();

            w.Line("/// <returns>(B, T, vocab) logits.</returns>");
            w.Open($"public override {Tensor} forward({Tensor} inputIds, {Tensor}? attentionMask)");
            w.Line($"using var scope = {Torch}.NewDisposeScope();");
            w.Line($"var h = {body}.forward(inputIds, attentionMask);  // (B, T, C)");
            w.Line($"return {head}.forward(h).MoveToOuterDisposeScope();");
            w.Close();
            w.Line();

            w.Line("/// <summary>Loads a Hugging Face folder (config.json + model.safetensors or shards), strictly.</summary>");
            w.Open($"public static {spec.Name} FromPretrained(string directory, {ModelLoadOptions}? options = null)");
            w.Line($"return {PretrainedLoader}.Load(directory, options, {Literals.String(c.ModelType)},");
            w.Line($"    json => new {spec.Name}({spec.ConfigType}.FromJson(json), {WeightInit}.None));");
            w.Close();
            w.Line();

            w.Line("/// <summary>Every checkpoint key and shape for <paramref name=\"config\"/>, computed without building the model.</summary>");
            w.Open($"public static global::System.Collections.Generic.IReadOnlyList<{CheckpointKey}> CheckpointKeys({spec.ConfigType} config)");
            w.Line($"var keys = new {KeyList}();");
            w.Line($"{c.BodyType.FullName}.DescribeCheckpoint(config, {Literals.String(c.Body.Name + ".")}, keys);");
            if (c.Tie.Expression != "true")
            {
                if (c.Tie.Expression != "false") w.Open($"if (!{c.Tie.Expression})");
                w.Line($"var (vocab, dim) = {c.BodyType.FullName}.EmbeddingShape(config);");
                w.Line($"keys.Add(new({Literals.String(c.Head.Name + ".weight")}, new[] {{ vocab, dim }}));");
                if (c.Tie.Expression != "false") w.Close();
            }
            w.Line("return keys;");
            w.Close();
            w.Line();

            w.Line("/// <summary>peft <c>target_modules</c> names of this model's linear sites.</summary>");
            w.Open("public static class Targets");
            foreach (var t in c.Targets)
                w.Line($"public const string {t.Identifier} = {Literals.String(t.Value)};");
            w.Close();
            w.Close();
            return w.ToString();
        }
    }
}
