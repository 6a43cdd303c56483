using PeftDsl.Errors;
using PeftDsl.Models;

namespace PeftDsl.Cli.Parity;

/// <summary>Runs every case of a fixture folder that the project supports and reports the rest as SKIP with a
/// reason. Nothing here knows the shipped fixtures' sizes, seeds, layers or targets.</summary>
public static class ParityRunner
{
    /// <summary>Loads the manifest of <paramref name="directory"/> and yields one result per case that
    /// <paramref name="filter"/> accepts (all when null), lazily, in manifest order; a case that raises an error is a FAIL.</summary>
    public static IEnumerable<CaseResult> Run(string directory, Func<FixtureCase, bool>? filter = null)
    {
        var manifest = FixtureManifest.Load(directory);
        foreach (var c in manifest.Cases.Where(c => filter?.Invoke(c) ?? true))
            yield return RunCase(manifest, c);
    }

    private static bool HasKey(string file, string key)
    {
        using var reader = Checkpoints.Safetensors.SafetensorsReader.Open(file);
        return reader.Entries.ContainsKey(key);
    }

    private static CaseResult RunCase(FixtureManifest manifest, FixtureCase c)
    {
        try
        {
            var modelType = StockModels.ModelTypeOf(manifest.BaseModelDirectory(c));
            var supported = c.Kind switch
            {
                "causal" => StockModels.IsCausal(modelType),
                "seq2seq" => StockModels.IsSeq2Seq(modelType),
                _ => false,
            };
            if (!supported)
                return CaseResult.Skip(c.Name, $"{c.Kind} model_type '{modelType}' is not supported yet");
            var peftTypes = manifest.PeftTypes(c);
            var unsupported = peftTypes.Where(t => t != Peft.Lora.LoraConfigJson.PeftType && t != Peft.Ia3.Ia3ConfigJson.PeftType
                                                   && !Peft.Prompts.PromptConfigJson.PeftTypes.ContainsKey(t)).ToList();
            if (unsupported.Count > 0)
                return CaseResult.Skip(c.Name, $"{string.Join(" + ", unsupported)} adapters are not supported yet");
            if (peftTypes.Count == 1 && Peft.Prompts.PromptConfigJson.PeftTypes.ContainsKey(peftTypes[0]) && c.Adapters.Count == 0
                && c.GreedyNewTokens is null && !HasKey(manifest.ExpectedFile(c), "generated"))
                return PromptCase.Run(manifest, c);
            if (c.GreedyNewTokens is not null || File.Exists(manifest.ExpectedFile(c)) && HasKey(manifest.ExpectedFile(c), "generated"))
                return GenerationCase.Run(manifest, c);
            return c.Adapters.Count > 0 ? MultiAdapterCase.Run(manifest, c) : ModelCase.Run(manifest, c);
        }
        catch (PeftDslException e)
        {
            return CaseResult.Fail(c.Name, double.NaN, "error: " + e.Message.ReplaceLineEndings(" "));
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // One broken case must not hide the report on the others.
            return CaseResult.Fail(c.Name, double.NaN, $"unexpected {e.GetType().Name}: {e.Message.ReplaceLineEndings(" ")}");
        }
    }
}
