using System.Text.Json;
using PeftDsl.Data;
using PeftDsl.Data.Chat;
using PeftDsl.Errors;
using PeftDsl.Runtime;
using PeftDsl.Tokenization;
using PeftDsl.Tokenization.Chat;
using Xunit;
using static TorchSharp.torch;

namespace PeftDsl.Tests.Training;

/// <summary>Conversations as training data: which tokens carry the loss on the real Llama 3.1 and Qwen3 templates,
/// {% generation %} templates, and bad records named by line.</summary>
public sealed class ChatDataTests
{
    private static (TextTokenizer Tokenizer, ChatTemplate Template) Real(string family)
    {
        var folder = HuggingFaceTokenizerTests.Shared(family);
        var tokenizer = TokenizerLoader.FromFolder(folder, null, 0);
        return (tokenizer, ChatTemplate.Of(tokenizer, folder));
    }

    private static Conversation Chat(params (string Role, string Content)[] turns)
    {
        var json = JsonSerializer.Serialize(turns.Select(t => new { role = t.Role, content = t.Content }));
        return new Conversation("default", JsonDocument.Parse(json).RootElement.EnumerateArray().ToList(), new Dictionary<string, JsonElement>(), "chat.jsonl:1");
    }

    /// <summary>The text of each run of loss-carrying tokens, special tokens written out.</summary>
    private static List<string> TrainedText(TextTokenizer tokenizer, TokenizedExample e)
    {
        var ids = e.Prompt.Concat(e.Answer).ToArray();
        var runs = new List<string>();
        for (var i = 0; i < ids.Length; i++)
        {
            if (!e.Targets![i]) continue;
            var j = i;
            while (j < ids.Length && e.Targets[j]) j++;
            runs.Add(tokenizer.DecodeKeepingSpecial(ids[i..j]));
            i = j;
        }
        return runs;
    }

    [Fact]
    public void Llama31TrainsEachAssistantReplyAndItsEndOfTurn()
    {
        var (tokenizer, template) = Real("llama3_1");
        var e = ConversationTokenizer.Tokenize(Chat(("system", "Be brief."), ("user", "Hi"), ("assistant", "Hello!"), ("user", "Bye"), ("assistant", " Bye. ")),
            tokenizer, template, 512);
        Assert.Equal(["Hello!<|eot_id|>", "Bye.<|eot_id|>"], TrainedText(tokenizer, e));   // the template trims content
        // The prompt is the conversation before the last reply, ending in the generation prompt.
        Assert.EndsWith("<|start_header_id|>user<|end_header_id|>\n\nBye<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n", tokenizer.DecodeKeepingSpecial(e.Prompt));
        Assert.Equal("Bye.<|eot_id|>", tokenizer.DecodeKeepingSpecial(e.Answer));
        Assert.StartsWith("<|begin_of_text|><|start_header_id|>system", tokenizer.DecodeKeepingSpecial(e.Prompt));
    }

    [Fact]
    public void Qwen3TrainsTheReplyWithItsEmptyThinkingBlock()
    {
        var (tokenizer, template) = Real("qwen3");
        var e = ConversationTokenizer.Tokenize(Chat(("user", "Hi"), ("assistant", "Hello")), tokenizer, template, 512);
        Assert.Equal(["<think>\n\n</think>\n\nHello<|im_end|>\n"], TrainedText(tokenizer, e));
        Assert.Equal("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n", tokenizer.DecodeKeepingSpecial(e.Prompt));
    }

    [Fact]
    public void Qwen3sMultiTurnTemplateIsRefusedAndAGenerationTemplateMarksEveryTurn()
    {
        var (tokenizer, template) = Real("qwen3");
        var chat = Chat(("user", "Hi"), ("assistant", "Hello"), ("user", "How are you?"), ("assistant", "Fine"));
        // Qwen3 drops an earlier turn's thinking block once a later user message follows: turn 2 renders differently.
        var e = Assert.Throws<PeftDslException>(() => ConversationTokenizer.Tokenize(chat, tokenizer, template, 512));
        Assert.StartsWith("chat.jsonl:1: the chat template renders the conversation before message 2 (assistant) differently", e.Message);
        Assert.Contains("{% generation %}", e.Message);

        var marked = ChatTemplate.Parse("""
            {%- for m in messages %}
            {%- if m.role == 'assistant' %}
            {{- '<|im_start|>assistant\n' }}{% generation %}{{ m.content }}<|im_end|>{% endgeneration %}{{ '\n' }}
            {%- else %}
            {{- '<|im_start|>' + m.role + '\n' + m.content + '<|im_end|>\n' }}
            {%- endif %}
            {%- endfor %}
            """, "marked.jinja");
        var example = ConversationTokenizer.Tokenize(chat, tokenizer, marked, 512);
        Assert.Equal(["Hello<|im_end|>", "Fine<|im_end|>"], TrainedText(tokenizer, example));
        Assert.Equal("Fine<|im_end|>\n", tokenizer.DecodeKeepingSpecial(example.Answer));
    }

    [Fact]
    public void BatchesTakeTheLossOnAssistantTokensOnlyUnlessFullLoss()
    {
        var (tokenizer, template) = Real("qwen3");
        var e = ConversationTokenizer.Tokenize(Chat(("user", "Hi"), ("assistant", "Hello")), tokenizer, template, 512);
        var ids = e.Prompt.Concat(e.Answer).ToArray();
        using (var batch = Batch.Causal([e], answerOnly: true, CPU))
        {
            var labels = batch.Labels[0].data<long>().ToArray();
            Assert.Equal(ids.Select((id, i) => e.Targets![i] ? id : Losses.IgnoreIndex), labels);
            Assert.Equal(e.Targets!.Count(t => t), batch.LossTokens);
        }
        using (var batch = Batch.Causal([e], answerOnly: false, CPU))
            Assert.Equal(ids, batch.Labels[0].data<long>().ToArray());
    }

    [Theory]
    [InlineData("""{"messages": []}""", "chat.jsonl:2: the conversation is empty")]
    [InlineData("""{"messages": [{"role": "user", "content": "a"}, {"role": "robot", "content": "b"}]}""", "chat.jsonl:2: message 2 has the unknown role 'robot' (roles: system, developer, user, assistant, tool)")]
    [InlineData("""{"messages": [{"role": "user", "content": "a"}]}""", "chat.jsonl:2: the conversation has no assistant turn")]
    [InlineData("""{"messages": [{"role": "user", "content": 3}, {"role": "assistant", "content": "b"}]}""", "chat.jsonl:2: message 1 (user): \"content\" must be text")]
    [InlineData("""{"messages": [{"content": "a"}]}""", "chat.jsonl:2: message 1 has no \"role\" string")]
    [InlineData("""{"input": "a", "output": "b"}""", "chat.jsonl:2: no \"messages\"")]
    [InlineData("""{"messages": {"role": "user"}}""", "chat.jsonl:2: \"messages\" must be a list")]
    public void BadConversationsAreOneLineNamingTheLine(string line, string message)
    {
        using var dir = new TempDir();
        var path = dir.File("chat.jsonl");
        File.WriteAllLines(path, ["""{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}""", line]);
        var e = Assert.Throws<PeftDslException>(() => Conversation.Read(path));
        Assert.StartsWith(path[..^"chat.jsonl".Length], e.Message);
        Assert.Contains(message, e.Message);
    }

    [Fact]
    public void AConversationLongerThanTheLimitIsRefusedByLine()
    {
        var (tokenizer, template) = Real("qwen3");
        var e = Assert.Throws<PeftDslException>(() => ConversationTokenizer.Tokenize(Chat(("user", "Hi"), ("assistant", "Hello")), tokenizer, template, 8));
        Assert.StartsWith("chat.jsonl:1: the conversation has ", e.Message);
        Assert.Contains("more than the maximum length 8 (--max-length)", e.Message);
    }
}

/// <summary>Conversation data through peft train and peft eval.</summary>
public sealed class ChatCliTests
{
    private const string Template = "{% for m in messages %}{% if m.role == 'assistant' %}Bot: {% generation %}{{ m.content }}.{% endgeneration %}\n" +
                                    "{% else %}{{ m.role }}: {{ m.content }}\n{% endif %}{% endfor %}{% if add_generation_prompt %}Bot: {% endif %}";

    [Fact]
    public void TrainAndEvalReadConversationsThroughTheChatTemplate()
    {
        using var dir = TrainCliTests.Workspace();
        File.WriteAllLines(dir.File("chat.jsonl"), TrainCliTests.Words.Select(w => JsonSerializer.Serialize(new
        {
            messages = new[] { new { role = "system", content = "Echo." }, new { role = "user", content = $"Repeat {w}" }, new { role = "assistant", content = w } },
        })));
        File.WriteAllText(dir.File("chat.jinja"), Template);
        var (code, stdout, stderr) = ParityTests.Peft("train", "--model", Fixtures.Base("llama"), "--tokenizer", dir.File("tok"), "--data", dir.File("chat.jsonl"),
            "--chat-template", dir.File("chat.jinja"), "--out", dir.File("run"), "--steps", "2", "--batch", "4");
        Assert.True(code == 0, stderr);
        Assert.Contains($"data {dir.File("chat.jsonl")}: {TrainCliTests.Words.Length} examples", stdout);

        // A resumed run must render as the first part did: a changed template is refused, by its content.
        File.WriteAllText(dir.File("changed.jinja"), Template.Replace("Bot: ", "Assistant: "));
        (code, _, stderr) = ParityTests.Peft("train", "--model", Fixtures.Base("llama"), "--tokenizer", dir.File("tok"), "--data", dir.File("chat.jsonl"),
            "--chat-template", dir.File("changed.jinja"), "--out", dir.File("run"), "--steps", "4", "--batch", "4", "--resume");
        Assert.Equal(2, code);
        Assert.Contains("--chat-template", Assert.Single(stderr.TrimEnd().Split('\n')));
        (code, stdout, stderr) = ParityTests.Peft("eval", "--model", Fixtures.Base("llama"), "--tokenizer", dir.File("tok"), "--data", dir.File("chat.jsonl"),
            "--chat-template", dir.File("chat.jinja"), "--adapter", dir.File("run"));
        Assert.True(code == 0, stderr);
        Assert.Contains("default", stdout);

        // The tokenizer folder has no template of its own: one line that says how to give one.
        (code, _, stderr) = ParityTests.Peft("train", "--model", Fixtures.Base("llama"), "--tokenizer", dir.File("tok"), "--data", dir.File("chat.jsonl"),
            "--out", dir.File("run2"), "--steps", "2");
        Assert.Equal(2, code);
        Assert.Contains("the tokenizer has no chat template", Assert.Single(stderr.TrimEnd().Split('\n')));
        Assert.False(Directory.Exists(dir.File("run2")));

        // A bad record: one line naming the file and line, nothing written.
        File.AppendAllText(dir.File("chat.jsonl"), """{"messages": [{"role": "user", "content": "x"}]}""" + "\n");
        (code, _, stderr) = ParityTests.Peft("train", "--model", Fixtures.Base("llama"), "--tokenizer", dir.File("tok"), "--data", dir.File("chat.jsonl"),
            "--chat-template", dir.File("chat.jinja"), "--out", dir.File("run3"), "--steps", "2");
        Assert.Equal(2, code);
        Assert.Contains($"chat.jsonl:{TrainCliTests.Words.Length + 1}: the conversation has no assistant turn", Assert.Single(stderr.TrimEnd().Split('\n')));
        Assert.False(Directory.Exists(dir.File("run3")));
    }
}

/// <summary>What only the command can check about data: the model's vocabulary, an unused --chat-template, and
/// --eval of another kind than --data.</summary>
public sealed class ChatCliRefusalTests
{
    [Fact]
    public void MismatchedTokenizerUnusedTemplateAndMixedKindsAreOneLine()
    {
        using var dir = TrainCliTests.Workspace();
        File.WriteAllText(dir.File("chat.jinja"), "{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}");
        File.WriteAllLines(dir.File("chat.jsonl"), TrainCliTests.Words.Select(w => JsonSerializer.Serialize(new
        {
            messages = new[] { new { role = "user", content = $"Repeat {w}" }, new { role = "assistant", content = w } },
        })));
        string[] Train(params string[] extra) =>
            ["train", "--model", Fixtures.Base("llama"), "--out", dir.File("run"), "--steps", "2", .. extra];

        // Qwen3's ids run to 151k; the model has 512: refused before a step runs (it failed inside the embedding).
        var (code, _, stderr) = ParityTests.Peft(Train("--tokenizer", HuggingFaceTokenizerTests.Shared("qwen3"), "--data", dir.File("train.jsonl")));
        Assert.Equal(2, code);
        Assert.Contains("train.jsonl:1: token id ", Assert.Single(stderr.TrimEnd().Split('\n')));
        Assert.Contains("is outside the model's vocabulary of 512", stderr);
        Assert.False(Directory.Exists(dir.File("run")));

        (code, _, stderr) = ParityTests.Peft(Train("--tokenizer", dir.File("tok"), "--data", dir.File("train.jsonl"), "--chat-template", dir.File("chat.jinja")));
        Assert.Equal(2, code);
        Assert.Contains("holds prompt/answer records, not conversations", Assert.Single(stderr.TrimEnd().Split('\n')));

        (code, _, stderr) = ParityTests.Peft(Train("--tokenizer", dir.File("tok"), "--data", dir.File("chat.jsonl"), "--chat-template", dir.File("chat.jinja"),
            "--eval", dir.File("dev.jsonl")));
        Assert.Equal(2, code);
        Assert.Contains("hold different kinds of records", Assert.Single(stderr.TrimEnd().Split('\n')));
        Assert.False(Directory.Exists(dir.File("run")));
    }
}

/// <summary>peft generate --chat: the prompt is the template's render with the generation prompt, and the reply stops
/// at the template's end of turn.</summary>
public sealed class ChatGenerateTests
{
    [Theory]
    [InlineData("qwen3", "<|im_end|>")]
    [InlineData("llama3_1", "<|eot_id|>")]
    [InlineData("gemma3", "<end_of_turn>")]
    public void TheEndOfTurnIsTheSpecialTokenAfterAReply(string family, string token)
    {
        var folder = HuggingFaceTokenizerTests.Shared(family);
        var tokenizer = TokenizerLoader.FromFolder(folder, null, 0);
        var end = ChatPrompt.EndOfTurn(ChatTemplate.Of(tokenizer, folder), tokenizer);
        Assert.NotNull(end);
        Assert.Equal(token, tokenizer.DecodeKeepingSpecial([end!.Value]));
    }

    [Fact]
    public void ChatPromptIsTheRenderWithTheGenerationPrompt()
    {
        var folder = HuggingFaceTokenizerTests.Shared("qwen3");
        var tokenizer = TokenizerLoader.FromFolder(folder, null, 0);
        var ids = ChatPrompt.Encode(ChatTemplate.Of(tokenizer, folder), tokenizer, "Hi", system: "Be brief.");
        Assert.Equal("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n", tokenizer.DecodeKeepingSpecial(ids));
    }

    [Fact]
    public void GenerateChatRunsTheRenderedPrompt()
    {
        using var dir = TrainCliTests.Workspace();
        File.WriteAllText(dir.File("chat.jinja"), "{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}{% if add_generation_prompt %}Bot: {% endif %}");
        var (code, chatOut, stderr) = ParityTests.Peft("generate", "--model", Fixtures.Base("llama"), "--tokenizer", dir.File("tok"), "--chat", "Repeat hello",
            "--chat-template", dir.File("chat.jinja"), "--max-new-tokens", "6", "--ids");
        Assert.True(code == 0, stderr);
        var tokenizer = TokenizerLoader.FromFolder(dir.File("tok"), "llama", 512);
        var rendered = string.Join(" ", tokenizer.EncodePiece("user: Repeat hello\nBot: "));
        (code, var idsOut, stderr) = ParityTests.Peft("generate", "--model", Fixtures.Base("llama"), "--prompt-ids", rendered, "--max-new-tokens", "6", "--ids");
        Assert.True(code == 0, stderr);
        Assert.Equal(idsOut, chatOut);
        Assert.NotEqual("", chatOut.Trim());

        (code, _, stderr) = ParityTests.Peft("generate", "--model", Fixtures.Base("llama"), "--tokenizer", dir.File("tok"), "--chat", "x", "--prompt", "y");
        Assert.Equal(2, code);
        Assert.Contains("give prompts one way", stderr);
        (code, _, stderr) = ParityTests.Peft("generate", "--model", Fixtures.Base("llama"), "--tokenizer", dir.File("tok"), "--chat", "x");
        Assert.Equal(2, code);
        Assert.Contains("the tokenizer has no chat template", Assert.Single(stderr.TrimEnd().Split('\n')));
    }
}
