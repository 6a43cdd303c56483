namespace PeftDsl.Data;

/// <summary>One training or evaluation record: its task, the fields the prompt is made of, and the answer.</summary>
/// <param name="Source">Where it came from (<c>file:line</c>), for every error about it.</param>
/// <param name="Choices">Multiple-choice records (<c>{"input", "choices", "label"}</c>): every answer choice; the
/// answer is <c>Choices[Label]</c>. Null for other records.</param>
public sealed record Example(string Task, IReadOnlyDictionary<string, string> Fields, string Answer, string Source,
    IReadOnlyList<string>? Choices = null, int Label = -1);

/// <summary>An example as token ids: the prompt, then the answer (ending with EOS when the tokenizer has one).</summary>
/// <param name="Choices">Multiple choice: each choice's ids (as the answer's, ending with EOS); <see cref="Answer"/> is
/// <c>Choices[Label]</c>.</param>
/// <param name="Targets">Conversations: per token of prompt and answer, whether it is the assistant's (and so takes
/// the loss under assistant-only loss). Null for prompt/answer records, where the answer is the target.</param>
public sealed record TokenizedExample(string Task, long[] Prompt, long[] Answer, string Source, long[][]? Choices = null, int Label = -1,
    bool[]? Targets = null)
{
    /// <summary>Prompt and answer: what a language-modelling batch holds (choices are scored in their own batch).</summary>
    public int Length => Prompt.Length + Answer.Length;
}
