using System.Globalization;

namespace PeftDsl.Generators.Parsing
{
    /// <summary>One spelling for every number the generator writes, so an epsilon reads the same everywhere.</summary>
    internal static class Literals
    {
        public static string Double(double value)
        {
            var text = value.ToString("R", CultureInfo.InvariantCulture).Replace("E", "e");
            return text.IndexOfAny(new[] { '.', 'e' }) >= 0 ? text : text + ".0";
        }

        public static string String(string value) =>
            "\"" + value.Replace("\\", "\\\\").Replace("\"", "\\\"") + "\"";
    }
}
