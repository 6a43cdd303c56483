using PeftDsl.Config;

namespace PeftDsl.Generation;

/// <summary>A checkpoint's own generation settings: generation_config.json first, then config.json, as
/// transformers reads them.</summary>
public sealed record GenerationDefaults(IReadOnlyList<long> EosTokenIds, long? PadTokenId, long? DecoderStartTokenId)
{
    /// <summary>Reads <c>eos_token_id</c> (one id or a list), <c>pad_token_id</c> and <c>decoder_start_token_id</c> from
    /// the folder's <c>generation_config.json</c>, falling back to <c>config.json</c>; absent files and keys leave them empty.</summary>
    public static GenerationDefaults FromFolder(string directory)
    {
        var sources = new[] { "generation_config.json", "config.json" }
            .Select(f => Path.Combine(directory, f)).Where(File.Exists).Select(ConfigJson.Load).ToList();
        IReadOnlyList<long> First(string key) => sources.Select(s => s.TokenIds(key)).FirstOrDefault(ids => ids.Count > 0) ?? [];
        var pad = First("pad_token_id");
        var start = First("decoder_start_token_id");
        return new GenerationDefaults(First("eos_token_id"), pad.Count > 0 ? pad[0] : null, start.Count > 0 ? start[0] : null);
    }

    /// <summary>Fills what the caller left open: stop at EOS, pad with the pad token (else EOS, else 0).</summary>
    public GenerationOptions ApplyTo(GenerationOptions options, bool padGiven) => options with
    {
        StopTokens = options.StopTokens.Count > 0 ? options.StopTokens : EosTokenIds,
        PadTokenId = padGiven ? options.PadTokenId : PadTokenId ?? EosTokenIds.FirstOrDefault(),
        DecoderStartTokenId = options.DecoderStartTokenId ?? DecoderStartTokenId,
    };
}
