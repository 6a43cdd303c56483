using System.Collections.Generic;
using System.Linq;
using PeftDsl.Generators.Model;
using PeftDsl.Generators.Parsing;
using static PeftDsl.Generators.Emit.TypeNames;

namespace PeftDsl.Generators.Emit
{
    /// <summary>What [CausalLM] and [Seq2SeqLM] roots share: the LM head, loading, checkpoint rules, targets.</summary>
    internal static class RootEmitter
    {
        /// <summary>Builds the head in the constructor; a literal tie is decided here, so consumers never compile a
        /// constant condition (CS0162).</summary>
        public static void ConstructHead(IndentedWriter w, HeadSpec h)
        {
            var field = h.Head.Field;
            var scaled = h.Scale.Expression;
            var softcap = h.Softcap is { } cap ? ", " + cap.Expression : "";
            var tied = $"{LmHead}.Tied({h.TiedEmbedding}, {scaled}{softcap})";
            var untied = $"new {LmHead}({h.TiedEmbedding}.Dim, {h.TiedEmbedding}.Count, {scaled}{softcap})";
            switch (h.Tie.Expression)
            {
                case "true": w.Line($"this.{field} = {tied};"); break;
                case "false": w.Line($"this.{field} = {untied};"); break;
                default:
                    w.Line($"this.{field} = {h.Tie.Expression}");
                    w.Line($"    ? {tied}");
                    w.Line($"    : {untied};");
                    break;
            }
        }

        public static void RegisterHead(IndentedWriter w, HeadSpec h) =>
            w.Line($"if (!this.{h.Head.Field}.IsTied) register_module({Literals.String(h.Head.Name)}, this.{h.Head.Field});");

        /// <param name="tiedCopies">Keys a checkpoint may hold as copies of a tied weight.</param>
        public static void Rules(IndentedWriter w, string modelType, HeadSpec h, EquatableArray<string> ignore, IEnumerable<string> tiedCopies, string? basePrefix)
        {
            w.Line("/// <inheritdoc/>");
            w.Line($"public override string ModelType => {Literals.String(modelType)};");
            w.Line();
            w.Line("/// <inheritdoc/>");
            w.Line($"public override long VocabSize => this.{h.Head.Field}.VocabSize;");
            w.Line();
            var copies = string.Join(", ", tiedCopies.Select(Literals.String));
            var headKey = Literals.String(h.Head.Name + ".weight");
            w.Line("/// <inheritdoc/>");
            w.Line($"public override {CheckpointRules} CheckpointRules => new(");
            w.Line($"    this.{h.Head.Field}.IsTied ? new[] {{ {headKey}{(copies.Length > 0 ? ", " + copies : "")} }} : {(copies.Length > 0 ? $"new[] {{ {copies} }}" : "global::System.Array.Empty<string>()")},");
            w.Line(ignore.Count == 0
                ? "    global::System.Array.Empty<string>(),"
                : $"    new[] {{ {string.Join(", ", ignore.Select(Literals.String))} }},");
            w.Line($"    {(basePrefix is null ? "null" : Literals.String(basePrefix))});");
            w.Line();
        }

        public static void FromPretrained(IndentedWriter w, ModuleSpec spec, string modelType, EquatableArray<string> alsoReads)
        {
            var accepted = modelType.Length == 0 ? new string[0] : new[] { modelType }.Concat(alsoReads);
            w.Line("/// <summary>Loads a Hugging Face folder (config.json + model.safetensors or shards), strictly.</summary>");
            w.Open($"public static {spec.Name} FromPretrained(string directory, {ModelLoadOptions}? options = null)");
            // The config's shapes are checked against the checkpoint's header before anything is allocated.
            w.Line($"return {PretrainedLoader}.Load(directory, options, new string[] {{ {string.Join(", ", accepted.Select(Literals.String))} }},");
            w.Line($"    {spec.ConfigType}.FromJson, CheckpointKeys, config => new {spec.Name}(config, {WeightInit}.None));");
            w.Close();
            w.Line();
        }

        /// <summary>The public static listing; <paramref name="body"/> writes the stacks' keys into <c>keys</c>.</summary>
        public static void CheckpointKeys(IndentedWriter w, ModuleSpec spec, HeadSpec h, string headShape, System.Action body)
        {
            w.Line("/// <summary>Every checkpoint key and shape for <paramref name=\"config\"/>, computed without building the model.</summary>");
            w.Open($"public static global::System.Collections.Generic.IReadOnlyList<{CheckpointKey}> CheckpointKeys({spec.ConfigType} config)");
            w.Line($"var keys = new {KeyList}();");
            body();
            if (h.Tie.Expression != "true")
            {
                if (h.Tie.Expression != "false") w.Open($"if (!{h.Tie.Expression})");
                w.Line($"var (vocab, dim) = {headShape};");
                w.Line($"keys.Add(new({Literals.String(h.Head.Name + ".weight")}, new[] {{ vocab, dim }}));");
                if (h.Tie.Expression != "false") w.Close();
            }
            w.Line("return keys;");
            w.Close();
            w.Line();
        }

        public static void Targets(IndentedWriter w, EquatableArray<TargetSpec> targets)
        {
            w.Line("/// <summary>peft <c>target_modules</c> names of this model's linear sites.</summary>");
            w.Open("public static class Targets");
            foreach (var t in targets)
            {
                w.Line($"/// <summary><c>{t.Value}</c></summary>");
                w.Line($"public const string {t.Identifier} = {Literals.String(t.Value)};");
            }
            w.Close();
        }
    }
}
