using System.Linq;
using PeftDsl.Generators.Model;
using PeftDsl.Generators.Parsing;
using static PeftDsl.Generators.Emit.TypeNames;

namespace PeftDsl.Generators.Emit
{
    /// <summary>[ModelConfig] → FromJson/Load: required keys in the initializer, optional ones through 'with',
    /// so a missing optional key keeps the property's own initializer.</summary>
    internal static class ConfigEmitter
    {
        public static string Emit(ConfigSpec spec)
        {
            var w = EmitHelpers.Begin(spec.Namespace);
            w.Open($"partial record {spec.Name}");
            w.Line($"/// <summary>Binds config.json; errors name the file, the key and the property.</summary>");
            w.Open($"public static {spec.Name} FromJson({ConfigJson} json)");
            var required = spec.Members.Where(m => m.Required).ToList();
            if (required.Count == 0)
            {
                w.Line($"var config = new {spec.Name}();");
            }
            else
            {
                w.Line($"var config = new {spec.Name}");
                w.Line("{");
                foreach (var m in required)
                    w.Line($"    {Names.Identifier(m.Name)} = json.Required<{m.Type}>({Keys(m)}, {Literals.String(spec.Name + "." + m.Name)}),");
                w.Line("};");
            }
            foreach (var m in spec.Members.Where(m => !m.Required))
            {
                var type = m.Nullable && m.Type != "string" && !m.Type.EndsWith("[]") ? m.Type + "?" : m.Type;
                w.Line($"if (json.Optional<{type}>({Keys(m)}, {Literals.String(spec.Name + "." + m.Name)}, out var v{m.Name}))");
                w.Line($"    config = config with {{ {Names.Identifier(m.Name)} = v{m.Name} }};");
            }
            // What the declaration computes: the values its properties accept, then the keys no property binds.
            foreach (var m in spec.Members.Where(m => m.Computes is not null))
                w.Line($"json.RequireComputed({Keys(m)}, config.{Names.Identifier(m.Name)}, new object?[] {{ {string.Join(", ", m.Computes!.Value)} }}, {Literals.String(spec.Name + "." + m.Name)});");
            w.Line($"json.RefuseUncomputed(new[] {{ {string.Join(", ", spec.Members.SelectMany(m => m.Keys).Select(Literals.String))} }}, {Literals.String(spec.Name)});");
            w.Line("config.OnBound(json);");
            w.Line("return config;");
            w.Close();
            w.Line();
            w.Line("/// <summary>Reads and binds a config.json file.</summary>");
            w.Line($"public static {spec.Name} Load(string path) => FromJson({ConfigJson}.Load(path));");
            w.Line();
            w.Line("/// <summary>Implement to check combinations the model does not support; throw a ConfigException naming the key.</summary>");
            w.Line($"partial void OnBound({ConfigJson} json);");
            w.Close();
            return w.ToString();
        }

        /// <summary>A refused config: FromJson and Load throw (the PEFT diagnostic says why), OnBound stays declarable.</summary>
        public static string EmitSkeleton(ConfigSkeletonSpec spec)
        {
            var w = EmitHelpers.Begin(spec.Namespace);
            var broken = Literals.String(spec.Name + "'s declaration has errors; see its PEFT diagnostics");
            w.Line($"/// <summary>{spec.Name}'s declaration has errors (see its PEFT diagnostics); binding throws.</summary>");
            w.Open($"partial {(spec.IsRecord ? "record" : "class")} {spec.Name}");
            w.Line($"public static {spec.Name} FromJson({ConfigJson} json) => throw new global::System.InvalidOperationException({broken});");
            w.Line($"public static {spec.Name} Load(string path) => throw new global::System.InvalidOperationException({broken});");
            w.Line($"partial void OnBound({ConfigJson} json);");
            w.Close();
            return w.ToString();
        }

        private static string Keys(ConfigMemberSpec m) => "new[] { " + string.Join(", ", m.Keys.Select(Literals.String)) + " }";
    }
}
