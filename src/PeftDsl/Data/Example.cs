namespace PeftDsl.Data;

/// <summary>One training or evaluation record: its task, the fields the prompt is made of, and the answer.</summary>
/// <param name="Source">Where it came from (<c>file:line</c>), for every error about it.</param>
public sealed record Example(string Task, IReadOnlyDictionary<string, string> Fields, string Answer, string Source);

/// <summary>An example as token ids: the prompt, then the answer (ending with EOS when the tokenizer has one).</summary>
public sealed record TokenizedExample(string Task, long[] Prompt, long[] Answer, string Source)
{
    public int Length => Prompt.Length + Answer.Length;
}
