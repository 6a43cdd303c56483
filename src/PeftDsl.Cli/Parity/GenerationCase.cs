using PeftDsl.Checkpoints.Safetensors;
using PeftDsl.Errors;
using PeftDsl.Generation;
using PeftDsl.Models;
using PeftDsl.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftDsl.Cli.Parity;

/// <summary>Greedy decoding with the case's adapter: <c>generated</c> (prompt + new tokens) token for token, with the
/// checkpoint's own stop tokens as transformers' <c>generate</c> uses them.</summary>
internal static class GenerationCase
{
    public static CaseResult Run(FixtureManifest manifest, FixtureCase c)
    {
        using var expected = SafetensorsReader.Open(manifest.ExpectedFile(c));
        var baseDir = manifest.BaseModelDirectory(c);
        using var model = (LanguageModel)StockModels.LoadGenerative(baseDir);
        if (c.AdapterDir is not null)
        {
            var names = model.Adapters.LoadAll(manifest.AdapterDirectory(c));
            model.Adapters.SetActive(names.ToArray());
        }
        using var scope = NewDisposeScope();
        var prompts = expected.Read("prompt");
        var generated = expected.Read("generated");
        var promptRows = Rows(prompts);
        var expectedRows = Rows(generated);
        var causal = model is CausalLanguageModel;
        var newTokens = c.GreedyNewTokens ?? (int)(generated.shape[1] - (causal ? prompts.shape[1] : 0));
        if (newTokens <= 0) throw new PeftDslException($"{manifest.ExpectedFile(c)}: no new tokens to compare");
        var options = GenerationDefaults.FromFolder(baseDir).ApplyTo(new GenerationOptions { MaxNewTokens = newTokens }, padGiven: false);
        var outputs = TextGenerator.Generate(model, promptRows, options);
        for (var row = 0; row < promptRows.Count; row++)
        {
            var ours = (causal ? promptRows[row].Concat(outputs[row]) : outputs[row]).ToList();
            var theirs = expectedRows[row];
            // transformers pads a row that stopped early (on a stop token) to the batch's length: ours is padded the
            // same way, and only then compared, so a row is never judged on a prefix of the reference.
            if (ours.Count < theirs.Length && outputs[row].Length > 0 && options.StopTokens.Contains(outputs[row][^1]))
                ours.AddRange(Enumerable.Repeat(options.PadTokenId, theirs.Length - ours.Count));
            if (ours.Count != theirs.Length || !ours.SequenceEqual(theirs))
                return CaseResult.Fail(c.Name, double.NaN,
                    $"row {row}: generated [{string.Join(" ", ours)}] ({ours.Count} tokens), reference [{string.Join(" ", theirs)}] ({theirs.Length} tokens)");
        }
        return CaseResult.Pass(c.Name, 0);
    }

    private static List<long[]> Rows(Tensor t) =>
        Enumerable.Range(0, (int)t.shape[0]).Select(i => t[i].data<long>().ToArray()).ToList();
}
