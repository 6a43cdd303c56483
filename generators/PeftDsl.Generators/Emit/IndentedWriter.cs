using System.Text;

namespace PeftDsl.Generators.Emit
{
    /// <summary>Writes indented C# text. Generated code is plain text, not SyntaxFactory trees: it is faster to
    /// produce and reads like the hand-written code it imitates.</summary>
    internal sealed class IndentedWriter
    {
        private readonly StringBuilder text = new();
        private int depth;

        public IndentedWriter Line(string line = "")
        {
            if (line.Length > 0) text.Append(' ', depth * 4).Append(line);
            text.Append('\n');
            return this;
        }

        public IndentedWriter Open(string header)
        {
            Line(header);
            Line("{");
            depth++;
            return this;
        }

        public IndentedWriter Close(string suffix = "")
        {
            depth--;
            return Line("}" + suffix);
        }

        public override string ToString() => text.ToString();
    }
}
