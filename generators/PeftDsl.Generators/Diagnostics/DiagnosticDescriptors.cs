using System.Collections.Generic;
using System.Linq;
using Microsoft.CodeAnalysis;

namespace PeftDsl.Generators.Diagnostics
{
    /// <summary>Every diagnostic the generator reports. Ids are never reused; each is documented in
    /// docs/diagnostics.md and tracked in AnalyzerReleases.*.md.</summary>
    internal static class DiagnosticDescriptors
    {
        private const string Category = "PeftDsl";

        public static readonly DiagnosticDescriptor NotPartial = Error("PEFT001", "DSL class must be partial",
            "'{0}' must be declared partial so the generator can complete it");

        public static readonly DiagnosticDescriptor UnknownBinding = Error("PEFT002", "Unknown binding",
            "{0} = \"{1}\" is neither a member of {2} nor a valid {3} literal");

        public static readonly DiagnosticDescriptor MissingComponent = Error("PEFT003", "Missing required component",
            "'{0}' needs {1}");

        public static readonly DiagnosticDescriptor SizesDoNotDivide = Error("PEFT004", "Sizes do not divide",
            "'{0}': {1}");

        public static readonly DiagnosticDescriptor DuplicateName = Error("PEFT005", "Duplicate checkpoint name",
            "'{0}' declares the name '{1}' more than once");

        public static readonly DiagnosticDescriptor UnknownActivation = Error("PEFT006", "Unknown activation",
            "Unknown activation '{0}'; expected one of {1}");

        public static readonly DiagnosticDescriptor BindingType = Error("PEFT007", "Binding has the wrong type",
            "{0} = \"{1}\": {2}");

        public static readonly DiagnosticDescriptor WrongModuleKind = Error("PEFT008", "Referenced class has the wrong kind",
            "{0} must refer to a [{1}] class, but '{2}' is {3}");

        public static readonly DiagnosticDescriptor ConflictingKinds = Error("PEFT009", "Several module kinds",
            "'{0}' has several module kinds ({1}); a DSL class has exactly one");

        public static readonly DiagnosticDescriptor ConfigMismatch = Error("PEFT010", "Config types differ",
            "'{0}' uses config {1}, but its submodule '{2}' uses {3}");

        public static readonly DiagnosticDescriptor ConfigNotRecord = Error("PEFT011", "Config must be a partial record",
            "[ModelConfig] '{0}' must be a partial record: the binder sets optional keys with 'with'");

        public static readonly DiagnosticDescriptor InvalidName = Error("PEFT012", "Invalid checkpoint name",
            "'{0}' is not a valid checkpoint name: use identifier-like segments separated by dots (e.g. 'attn.c_attn')");

        public static readonly DiagnosticDescriptor ConflictingProjections = Error("PEFT013", "Conflicting projections",
            "'{0}': {1}");

        public static readonly DiagnosticDescriptor UnresolvedTie = Error("PEFT014", "Tied head does not name the token embedding",
            "TiedTo = \"{0}\" must name the body's token embedding, '{1}'");

        public static readonly DiagnosticDescriptor ComponentNotAllowed = Error("PEFT015", "Component on the wrong kind of class",
            "[{0}] does not belong on a [{1}] class");

        public static readonly DiagnosticDescriptor UnsupportedConfigType = Error("PEFT016", "Unsupported config property type",
            "'{0}' has type {1}; [ConfigKey] supports int, long, float, double, bool and string, their nullable forms, and string[] and double[]");

        public static readonly DiagnosticDescriptor RequiredWithoutKey = Error("PEFT017", "Required config property without a key",
            "Required property '{0}' has no [ConfigKey], so config.json cannot set it");

        public static readonly DiagnosticDescriptor NestedType = Error("PEFT018", "DSL class is nested",
            "'{0}' is nested in another type; declare DSL classes at namespace level");

        public static readonly DiagnosticDescriptor ConfigKeyNotSettable = Error("PEFT019", "Config property cannot be set",
            "'{0}' has [ConfigKey] but no set or init accessor");

        public static readonly DiagnosticDescriptor BaseClassConflict = Error("PEFT020", "DSL class declares a base class",
            "'{0}' derives from {1}; DSL classes get their base class from the generator");

        public static readonly DiagnosticDescriptor RotaryMissing = Error("PEFT021", "Rotary attention without rotary embedding",
            "'{0}' uses attention '{1}' declared with Rotary = true, but has no [RotaryEmbedding]");

        public static readonly DiagnosticDescriptor InvalidConfigKey = Error("PEFT022", "Invalid config key",
            "[ConfigKey] on '{0}' needs at least one non-empty key");

        public static readonly DiagnosticDescriptor SharedEmbeddingMissing = Error("PEFT023", "Shared token embedding without a provider",
            "'{0}' uses a shared token embedding, but '{1}' has no [SharedEmbedding] to give it");

        public static readonly DiagnosticDescriptor ComputesWrongType = Error("PEFT024", "Computed value has the wrong type",
            "Computes on '{0}' lists {1}, which is not a value of its type {2}");

        public static readonly DiagnosticDescriptor NotAClass = Error("PEFT025", "DSL module is a record",
            "'{0}' is a record; declare DSL modules as partial classes (only [ModelConfig] types are records)");

        public static readonly DiagnosticDescriptor GenericType = Error("PEFT026", "DSL class is generic",
            "'{0}' has type parameters; DSL classes cannot be generic");

        public static readonly DiagnosticDescriptor NameCollision = Error("PEFT027", "Generated names collide",
            "'{0}': the name '{1}' becomes the member '{2}', which {3}");

        public static readonly DiagnosticDescriptor SublayerOrder = Warning("PEFT028", "Sublayer declared out of order",
            "'{0}': sublayers run self-attention, then cross-attention, then feed-forward; '{1}' is declared after '{2}' but runs before it");

        public static readonly DiagnosticDescriptor LiteralComputation = Error("PEFT029", "Computation fixed by a literal",
            "{0} = \"{1}\" fixes {2} for every checkpoint; bind it to a config property with [ConfigKey(\"{3}\")] (its default can be {1}) so that a checkpoint whose config says otherwise is refused instead of computed this way");

        public static readonly DiagnosticDescriptor StaticOrAbstract = Error("PEFT030", "DSL class is static or abstract",
            "'{0}' is {1}; the generator completes DSL classes with instance members and constructs them");

        private static readonly Dictionary<string, DiagnosticDescriptor> All = typeof(DiagnosticDescriptors)
            .GetFields()
            .Where(f => f.FieldType == typeof(DiagnosticDescriptor))
            .Select(f => (DiagnosticDescriptor)f.GetValue(null)!)
            .ToDictionary(d => d.Id);

        public static DiagnosticDescriptor ById(string id) => All[id];

        private static DiagnosticDescriptor Warning(string id, string title, string message) =>
            new(id, title, message, Category, DiagnosticSeverity.Warning, isEnabledByDefault: true,
                helpLinkUri: "docs/diagnostics.md#" + id.ToLowerInvariant());

        private static DiagnosticDescriptor Error(string id, string title, string message) =>
            new(id, title, message, Category, DiagnosticSeverity.Error, isEnabledByDefault: true,
                helpLinkUri: "docs/diagnostics.md#" + id.ToLowerInvariant());
    }
}
