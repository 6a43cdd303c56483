using System.Text;

namespace PeftDsl.Tokenization.HuggingFace;

/// <summary>tokenizer.json's <c>normalizer</c>: text → text, before pre-tokenization (offsets are not tracked: only
/// ids are needed).</summary>
internal static class Normalizers
{
    private const string Supported = "NFC, NFD, NFKC, NFKD, Lowercase, Replace, Prepend, Strip, Sequence";

    public static Func<string, string> Read(JsonSpec spec) => spec.Type switch
    {
        "NFC" => s => s.Normalize(NormalizationForm.FormC),
        "NFD" => s => s.Normalize(NormalizationForm.FormD),
        "NFKC" => s => s.Normalize(NormalizationForm.FormKC),
        "NFKD" => s => s.Normalize(NormalizationForm.FormKD),
        "Lowercase" => s => s.ToLowerInvariant(),
        "Replace" => Replace(spec),
        "Prepend" => Prepend(spec.String("prepend")),
        "Strip" => Strip(spec.Bool("strip_left", true), spec.Bool("strip_right", true)),
        "Sequence" => Sequence(spec.Items("normalizers").Select(Read).ToList()),
        _ => throw spec.Unsupported(Supported),
    };

    private static Func<string, string> Replace(JsonSpec spec)
    {
        var pattern = TextPattern.Read(spec);
        var content = spec.String("content");
        return s => pattern.Replace(s, content);
    }

    // tokenizers prepends only to non-empty text.
    private static Func<string, string> Prepend(string prefix) => s => s.Length == 0 ? s : prefix + s;

    private static Func<string, string> Strip(bool left, bool right) => s => (left, right) switch
    {
        (true, true) => s.Trim(),
        (true, false) => s.TrimStart(),
        (false, true) => s.TrimEnd(),
        _ => s,
    };

    private static Func<string, string> Sequence(List<Func<string, string>> steps) => s => steps.Aggregate(s, (text, step) => step(text));
}
