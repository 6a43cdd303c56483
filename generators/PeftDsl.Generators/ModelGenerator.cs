using System.Linq;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using PeftDsl.Generators.Emit;
using PeftDsl.Generators.Model;
using PeftDsl.Generators.Parsing;

namespace PeftDsl.Generators
{
    /// <summary>
    /// The DSL compiler. Only pipeline wiring lives here: (1) find [ModelConfig] records and module-kind classes
    /// with ForAttributeWithMetadataName, (2) parse each into a value-equatable spec plus diagnostics,
    /// (3) report diagnostics and emit source from separate outputs, so an edit that moves a span re-reports
    /// without re-emitting, and an unrelated edit leaves every step cached.
    /// </summary>
    [Generator(LanguageNames.CSharp)]
    public sealed class ModelGenerator : IIncrementalGenerator
    {
        public void Initialize(IncrementalGeneratorInitializationContext context)
        {
            var configs = context.SyntaxProvider
                .ForAttributeWithMetadataName(AttributeNames.ModelConfig,
                    static (node, _) => node is TypeDeclarationSyntax,
                    static (ctx, ct) => ConfigParser.Parse(ctx, ct))
                .WithTrackingName(TrackingNames.ConfigParse);
            Emit(context, configs, ConfigEmitter.Emit, s => s.HintName, TrackingNames.ConfigSpec);
            var configSkeletons = configs.Select(static (r, _) => r.ConfigSkeleton).Where(static s => s is not null);
            context.RegisterSourceOutput(configSkeletons, static (spc, s) => spc.AddSource(s!.HintName, ConfigEmitter.EmitSkeleton(s)));

            foreach (var kind in AttributeNames.Kinds)
            {
                var modules = context.SyntaxProvider
                    .ForAttributeWithMetadataName(kind.Value,
                        static (node, _) => node is ClassDeclarationSyntax or RecordDeclarationSyntax,
                        (ctx, ct) => ModuleParser.Parse(ctx, kind.Key, ct))
                    .WithTrackingName(TrackingNames.ModuleParse + kind.Key);
                Emit(context, modules, EmitModule, s => s.HintName, TrackingNames.ModuleSpec + kind.Key);
                var skeletons = modules.Select(static (r, _) => r.Skeleton).Where(static s => s is not null);
                context.RegisterSourceOutput(skeletons, static (spc, s) => spc.AddSource(s!.HintName, SkeletonEmitter.Emit(s)));
            }
        }

        private static void Emit<T>(IncrementalGeneratorInitializationContext context, IncrementalValuesProvider<ParseResult<T>> results,
            System.Func<T, string> emit, System.Func<T, string> hintName, string specTrackingName) where T : class
        {
            var diagnostics = results.Select(static (r, _) => r.Diagnostics).Where(static d => d.Count > 0);
            context.RegisterSourceOutput(diagnostics, static (spc, list) =>
            {
                foreach (var d in list) spc.ReportDiagnostic(d.ToDiagnostic());
            });
            var specs = results.Select(static (r, _) => r.Spec).Where(static s => s is not null).WithTrackingName(specTrackingName);
            context.RegisterSourceOutput(specs, (spc, spec) => spc.AddSource(hintName(spec!), emit(spec!)));
        }

        private static string EmitModule(ModuleSpec spec) => spec.Kind switch
        {
            ModuleKind.CausalLM => CausalLmEmitter.Emit(spec),
            ModuleKind.Seq2SeqLM => Seq2SeqEmitter.Emit(spec),
            ModuleKind.TransformerStack => StackEmitter.Emit(spec),
            ModuleKind.TransformerBlock => BlockEmitter.Emit(spec),
            ModuleKind.SelfAttention or ModuleKind.CrossAttention => AttentionEmitter.Emit(spec),
            _ => FeedForwardEmitter.Emit(spec),
        };
    }

    /// <summary>Step names that the incremental-caching test inspects.</summary>
    public static class TrackingNames
    {
        public const string ConfigParse = "ConfigParse";
        public const string ConfigSpec = "ConfigSpec";
        public const string ModuleParse = "ModuleParse.";
        public const string ModuleSpec = "ModuleSpec.";
    }
}
