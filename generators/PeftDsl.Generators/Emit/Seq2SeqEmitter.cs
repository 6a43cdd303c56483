using System.Collections.Generic;
using PeftDsl.Generators.Model;
using PeftDsl.Generators.Parsing;
using static PeftDsl.Generators.Emit.TypeNames;

namespace PeftDsl.Generators.Emit
{
    /// <summary>[Seq2SeqLM] → shared embedding, encoder, decoder, LM head; Encode/Decode, loading, listing.</summary>
    internal static class Seq2SeqEmitter
    {
        public static string Emit(ModuleSpec spec)
        {
            var s = spec.Seq2Seq!;
            var w = EmitHelpers.Begin(spec.Namespace);
            w.Open($"partial class {spec.Name} : {Seq2SeqLanguageModel}");
            w.Line("/// <summary>The config the model was built from.</summary>");
            w.Line($"public {spec.ConfigType} Config {{ get; }}");
            w.Line();
            w.Line($"/// <summary>{s.Shared.Name}: the token embedding of both stacks and, when tied, of the head.</summary>");
            w.Line($"public readonly {Embedding} {s.Shared.Field};");
            w.Line($"/// <summary>{s.Encoder.Member.Name}: the encoder stack.</summary>");
            w.Line($"public readonly {s.Encoder.Type.FullName} {s.Encoder.Member.Field};");
            w.Line($"/// <summary>{s.Decoder.Member.Name}: the decoder stack (self-attention, then cross-attention to the encoder).</summary>");
            w.Line($"public readonly {s.Decoder.Type.FullName} {s.Decoder.Member.Field};");
            w.Line($"/// <summary>{s.Head.Head.Name}; shares the token embedding's weight when tied.</summary>");
            w.Line($"public readonly {LmHead} {s.Head.Head.Field};");
            w.Line();

            w.Line("/// <summary>The model for <paramref name=\"config\"/>, with random weights unless <paramref name=\"init\"/> says otherwise.</summary>");
            w.Line($"/// <param name=\"config\">Sizes and options, as config.json gives them.</param>");
            w.Line($"/// <param name=\"init\"><see cref=\"{WeightInit}.None\"/> leaves weights uninitialised for a checkpoint to fill.</param>");
            w.Open($"public {spec.Name}({spec.ConfigType} config, {WeightInit} init = {WeightInit}.Normal) : base(nameof({spec.Name}))");
            w.Line("this.Config = config;");
            w.Line("var (vocab, dim) = SharedShape(config);");
            w.Line($"this.{s.Shared.Field} = new {Embedding}(vocab, dim);");
            foreach (var stack in new[] { s.Encoder, s.Decoder })
                w.Line($"this.{stack.Member.Field} = new {stack.Type.FullName}(config{(stack.TakesSharedEmbedding ? ", this." + s.Shared.Field : "")});");
            RootEmitter.ConstructHead(w, s.Head);
            EmitHelpers.Register(w, new[] { s.Shared, s.Encoder.Member, s.Decoder.Member });
            RootEmitter.RegisterHead(w, s.Head);
            w.Line($"{WeightInitializer}.Apply(this, init);");
            w.Close();
            w.Line();

            // Older checkpoints also save the stacks' views of the shared table.
            var copies = new List<string>();
            foreach (var stack in new[] { s.Encoder, s.Decoder })
                if (stack.TakesSharedEmbedding) copies.Add(stack.Member.Name + "." + "embed_tokens.weight");
            RootEmitter.Rules(w, s.ModelType, s.Head, s.IgnoreKeys, copies, null);

            w.Line("/// <inheritdoc/>");
            w.Line($"public override long DecoderStartTokenId => Start(this.Config);");
            w.Line();
            w.Line($"private static long Start({spec.ConfigType} config) => {s.DecoderStart.Expression};");
            w.Line();
            w.Line("/// <inheritdoc/>");
            w.Line($"protected override {LmHead} Head => this.{s.Head.Head.Field};");
            w.Line();
            w.Line("/// <returns>(B, S, C) encoder states.</returns>");
            w.Line($"protected override {Tensor} EncoderHidden({Tensor} inputIds, {StackInputs} inputs) => this.{s.Encoder.Member.Field}.forward(inputIds, inputs);");
            w.Line();
            w.Line("/// <returns>(B, T, C) decoder states.</returns>");
            w.Line($"protected override {Tensor} DecoderHidden({Tensor} decoderIds, {StackInputs} inputs) => this.{s.Decoder.Member.Field}.forward(decoderIds, inputs);");
            w.Line();

            RootEmitter.FromPretrained(w, spec, s.ModelType, s.AlsoReads);
            RootEmitter.CheckpointKeys(w, spec, s.Head, "SharedShape(config)", () =>
            {
                w.Line("var (sharedVocab, sharedDim) = SharedShape(config);");
                w.Line($"keys.Add(new({Literals.String(s.Shared.Name + ".weight")}, new[] {{ sharedVocab, sharedDim }}));");
                w.Line($"{s.Encoder.Type.FullName}.DescribeCheckpoint(config, {Literals.String(s.Encoder.Member.Name + ".")}, keys);");
                w.Line($"{s.Decoder.Type.FullName}.DescribeCheckpoint(config, {Literals.String(s.Decoder.Member.Name + ".")}, keys);");
            });
            w.Line("/// <summary>(vocabulary, hidden size) of the shared embedding, checked.</summary>");
            w.Open($"private static (long Vocab, long Dim) SharedShape({spec.ConfigType} config)");
            w.Line($"return ({EmitHelpers.Positive(s.Vocab, spec.Name)}, {EmitHelpers.Positive(s.Dim, spec.Name)});");
            w.Close();
            w.Line();
            RootEmitter.Targets(w, s.Targets);
            w.Close();
            return w.ToString();
        }
    }
}
