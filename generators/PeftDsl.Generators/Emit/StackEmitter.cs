using System.Linq;
using PeftDsl.Generators.Model;
using PeftDsl.Generators.Parsing;
using static PeftDsl.Generators.Emit.TypeNames;

namespace PeftDsl.Generators.Emit
{
    /// <summary>[TransformerStack] → embeddings (+ virtual-prompt site), positions, blocks, final norm.</summary>
    internal static class StackEmitter
    {
        public static string Emit(ModuleSpec spec)
        {
            var s = spec.Stack!;
            var norm = EmitHelpers.Norm(s.FinalNormKind);
            var tokens = s.TokenEmbedding.Field;
            var w = EmitHelpers.Begin(spec.Namespace);
            w.Open($"partial class {spec.Name} : {EmitHelpers.ModuleBase(Tensor, StackInputs, Tensor)}, {IPeftSiteOwner}");
            w.Line(s.SharedTokens ? $"/// <summary>The root's shared embedding; saved under the root's name, not under {s.TokenEmbedding.Name}.</summary>"
                : $"/// <summary>{s.TokenEmbedding.Name}: the token embedding.</summary>");
            w.Line($"public readonly {Embedding} {tokens};");
            if (s.Positions is { } pos)
            {
                w.Line($"/// <summary>{pos.Name}: the learned position embedding.</summary>");
                w.Line($"public readonly {Embedding} {pos.Field};");
            }
            w.Line($"/// <summary>{s.Blocks.Name}: the transformer blocks, in order.</summary>");
            w.Line($"public readonly {ModuleList}<{s.BlockType.FullName}> {s.Blocks.Field};");
            w.Line($"/// <summary>{s.FinalNorm.Name}: the norm after the last block.</summary>");
            w.Line($"public readonly {norm} {s.FinalNorm.Field};");
            if (s.Rotary is not null) w.Line($"private readonly {RotaryEmbedding} rotary;");
            if (s.Rotary?.LocalTheta is { } lt)
            {
                w.Line($"/// <summary>The sliding-window layers' tables: θ = {lt.Display}, without scaling.</summary>");
                w.Line($"private readonly {RotaryEmbedding} localRotary;");
            }
            if (s.Rotary?.MaxPositions is { } mp)
            {
                w.Line($"/// <summary>{mp.Display}: the positions the checkpoint was trained for.</summary>");
                w.Line("private readonly long contextLength;");
            }
            if (s.EmbeddingDropout is { } ed) EmitHelpers.DropoutField(w, ed, "embeddingDropout", "on the embeddings");
            if (s.FinalDropout is { } fd) EmitHelpers.DropoutField(w, fd, "finalDropout", $"on the output of {s.FinalNorm.Name}");
            w.Line();
            w.Line("/// <summary>Learned positions the stack accepts (virtual tokens and cached ones included); null when unbounded.</summary>");
            w.Line(s.Positions is { } limit ? $"public long? PositionLimit => this.{limit.Field}.Count;" : "public long? PositionLimit => null;");
            w.Line();
            w.Line("/// <summary>Positions the checkpoint was trained for: the learned positions, or the rotary embedding's bound context; null when not declared.</summary>");
            w.Line(s.Rotary?.MaxPositions is not null ? "public long? ContextLength => this.contextLength;" : "public long? ContextLength => this.PositionLimit;");
            w.Line();
            w.Line("/// <summary>longrope's original context, past which a pass takes the long factors; null for other position schemes.</summary>");
            w.Line(s.Rotary is not null ? "public long? LongRopeFrom => this.rotary.LongFactorsFrom;" : "public long? LongRopeFrom => null;");
            w.Line();
            if (s.VirtualPrompts)
            {
                w.Line($"/// <summary>Where prompt learning prepends virtual tokens to the {s.TokenEmbedding.Name} output (registered as virtual_prompt).</summary>");
                w.Line($"public readonly {VirtualPromptSite} VirtualPrompts = new();");
                w.Line();
            }

            var sharedParameter = s.SharedTokens ? $", {Embedding} sharedEmbedding" : "";
            w.Line("/// <summary>The stack's modules, sized from <paramref name=\"config\"/>.</summary>");
            w.Open($"public {spec.Name}({spec.ConfigType} config{sharedParameter}) : base(nameof({spec.Name}))");
            if (s.SharedTokens)
            {
                w.Line($"this.{tokens} = sharedEmbedding;");
                w.Line($"var dim = {EmitHelpers.Positive(s.Dim, spec.Name)};");
            }
            else
            {
                w.Line("var (vocab, dim) = EmbeddingShape(config);");
                w.Line($"this.{tokens} = new {Embedding}(vocab, dim){(s.EmbeddingScale == "Tokens" ? " { Scaled = true }" : "")};");
            }
            if (s.Positions is { } p) w.Line($"this.{p.Field} = new {Embedding}({EmitHelpers.Positive(s.MaxPositions!, spec.Name)}, dim);");
            if (s.Rotary is { } r)
            {
                var fraction = r.Fraction.Expression == "1" || r.Fraction.Expression == "1.0" ? "" : $", fraction: {r.Fraction.Expression}";
                var contextSetting = r.MaxPositions is { } mpos ? new[] { $"MaxPositions = {mpos.Expression}" } : new string[0];
                var scaling = r.Scaling is { } sc
                    ? $", scaling: new {RopeScaling} {{ {string.Join(", ", sc.Select(b => $"{b.Property} = {b.Value.Expression}").Concat(contextSetting))} }}"
                    : "";
                w.Line($"this.rotary = new {RotaryEmbedding}({EmitHelpers.Positive(r.HeadDim, spec.Name)}, {r.Theta.Expression}, {r.RopeType.Expression}, {Literals.String(spec.Name)}{fraction}{scaling});");
                if (r.LocalTheta is { } local)
                    w.Line($"this.localRotary = new {RotaryEmbedding}({EmitHelpers.Positive(r.HeadDim, spec.Name)}, {local.Expression}, \"default\", {Literals.String(spec.Name)}{fraction}, thetaKey: {Literals.String(local.Display)});");
                if (r.MaxPositions is { } maxPositions) w.Line($"this.contextLength = {EmitHelpers.Positive(maxPositions, spec.Name)};");
            }
            w.Line($"var count = {EmitHelpers.Positive(s.Count, spec.Name)};");
            w.Line($"var blocks = new {s.BlockType.FullName}[count];");
            w.Line($"for (var i = 0; i < count; i++) blocks[i] = new {s.BlockType.FullName}(config, i);");
            w.Line($"this.{s.Blocks.Field} = new {ModuleList}<{s.BlockType.FullName}>(blocks);");
            w.Line($"this.{s.FinalNorm.Field} = new {norm}(dim, {s.FinalNormEps.Expression});");
            if (s.EmbeddingDropout is { } embeddingDropout) w.Line($"this.embeddingDropout = {EmitHelpers.Probability(embeddingDropout, spec.Name)};");
            if (s.FinalDropout is { } finalDropout) w.Line($"this.finalDropout = {EmitHelpers.Probability(finalDropout, spec.Name)};");
            var members = new System.Collections.Generic.List<Member>();
            if (!s.SharedTokens) members.Add(s.TokenEmbedding);
            if (s.Positions is not null) members.Add(s.Positions);
            members.Add(s.Blocks);
            members.Add(s.FinalNorm);
            EmitHelpers.Register(w, members);
            if (s.VirtualPrompts) w.Line($"register_module({Literals.String("virtual_prompt")}, this.VirtualPrompts);");
            w.Close();
            w.Line();

            w.Line("/// <param name=\"inputIds\">(B, T) token ids.</param>");
            w.Line("/// <param name=\"inputs\">Padding mask, encoder output (decoder stacks), KV cache and adapter routing.</param>");
            w.Line("/// <returns>(B, T', C) final hidden states; T' includes any virtual tokens.</returns>");
            w.Open($"public override {Tensor} forward({Tensor} inputIds, {StackInputs} inputs)");
            w.Line($"using var scope = {Torch}.NewDisposeScope();");
            w.Line($"var x = this.{tokens}.forward(inputIds);  // (B, T, C)");
            if (s.VirtualPrompts)
            {
                w.Line("(x, inputs) = this.VirtualPrompts.Prepend(x, inputs);");
            }
            if (s.EmbeddingScale == "Inputs") w.Line($"x = {Embedding}.BySqrtDim(x);  // every input, virtual tokens included");
            w.Line($"using var ctx = {ForwardContext}.Create(x, inputs, {(s.Rotary is null ? "null" : "this.rotary")}{(s.Rotary?.LocalTheta is null ? "" : ", this.localRotary")});");
            if (s.Positions is { } positions)
                w.Line($"x = x + this.{positions.Field}.Positions(ctx.Positions, ctx.PastLength + ctx.Length);  // (B, T, C)");
            if (s.EmbeddingDropout is not null) w.Line($"x = {EmitHelpers.Dropout("x", "embeddingDropout")};");
            w.Line($"foreach (var block in this.{s.Blocks.Field}) x = ctx.RunBlock(block, x);  // recomputed in backward under gradient checkpointing");
            var final = $"this.{s.FinalNorm.Field}.forward(x)";
            w.Line($"return {(s.FinalDropout is null ? final : EmitHelpers.Dropout(final, "finalDropout"))}.MoveToOuterDisposeScope();");
            w.Close();
            w.Line();

            EmitHelpers.NoFieldRegistration(w);
            w.Line("/// <inheritdoc/>");
            w.Open($"public {SiteList} Sites(string path)");
            if (s.VirtualPrompts)
                w.Line($"yield return new {PeftSite}({SiteKind}.VirtualPrompt, {SiteNames}.VirtualPrompt, {ModulePath}.Join(path, {Literals.String(s.TokenEmbedding.Name)}), null);");
            else
                w.Line("yield break;");
            w.Close();
            w.Line();

            if (!s.SharedTokens)
            {
                w.Line("/// <summary>(vocabulary, hidden size) of the token embedding, checked.</summary>");
                w.Open($"internal static (long Vocab, long Dim) EmbeddingShape({spec.ConfigType} config)");
                w.Line($"return ({EmitHelpers.Positive(s.Vocab!, spec.Name)}, {EmitHelpers.Positive(s.Dim, spec.Name)});");
                w.Close();
                w.Line();
            }

            w.Open($"internal static void DescribeCheckpoint({spec.ConfigType} config, string prefix, {KeyList} keys)");
            if (s.SharedTokens)
            {
                w.Line($"var dim = {EmitHelpers.Positive(s.Dim, spec.Name)};");
            }
            else
            {
                w.Line("var (vocab, dim) = EmbeddingShape(config);");
                w.Line($"{CheckpointKeys}.Embedding(keys, prefix + {Literals.String(s.TokenEmbedding.Name)}, vocab, dim);");
            }
            if (s.Positions is { } pp)
                w.Line($"{CheckpointKeys}.Embedding(keys, prefix + {Literals.String(pp.Name)}, {EmitHelpers.Positive(s.MaxPositions!, spec.Name)}, dim);");
            w.Line($"var count = {EmitHelpers.BlockCount(s.Count, spec.Name)};");
            w.Line($"for (var i = 0; i < count; i++) {s.BlockType.FullName}.DescribeCheckpoint(config, prefix + {Literals.String(s.Blocks.Name + ".")} + i + \".\", keys, i);");
            w.Line($"{CheckpointKeys}.Norm(keys, prefix + {Literals.String(s.FinalNorm.Name)}, {NormKind}.{s.FinalNormKind}, dim);");
            w.Close();
            w.Close();
            return w.ToString();
        }
    }
}
