using System.CommandLine;
using PeftDsl.Data;
using PeftDsl.Data.Chat;
using PeftDsl.Errors;
using PeftDsl.Models;
using PeftDsl.Runtime;
using PeftDsl.Tokenization;
using PeftDsl.Tokenization.Chat;

namespace PeftDsl.Cli.Commands;

/// <summary>How JSONL records become prompts and answers, and where the tokenizer comes from; shared by train and eval.</summary>
public sealed class DataOptions
{
    /// <summary><c>--template</c>: NeMo-style prompt template with <c>{field}</c>s; without it the prompt is the record's <c>input</c>.</summary>
    public Option<string?> Template { get; } = new("--template") { Description = "NeMo-style prompt template with {field}s, e.g. \"Context: {context} Question: {question} Answer:\"; default: the record's \"input\"" };

    /// <summary><c>--answer-field</c>: the record field holding the answer (default <c>output</c>).</summary>
    public Option<string> AnswerField { get; } = new("--answer-field") { Description = "The field holding the answer", DefaultValueFactory = _ => "output" };

    /// <summary><c>--truncate-field</c>: the template field cut when an example is longer than <c>--max-length</c>.</summary>
    public Option<string?> TruncateField { get; } = new("--truncate-field") { Description = "The template field to cut when an example is longer than --max-length" };

    /// <summary><c>--max-length</c>: longest example in tokens (default: the model's position limit, at most 1024).</summary>
    public Option<int?> MaxLength { get; } = new("--max-length") { Description = "Longest example in tokens (default: the model's position limit, at most 1024)" };

    /// <summary><c>--virtual-token-splits</c>: comma-separated virtual-token counts, one per <c>&lt;|VIRTUAL_PROMPT_k|&gt;</c> marker of the template.</summary>
    public Option<string?> VirtualTokenSplits { get; } = new("--virtual-token-splits") { Description = "prompt/ptuning: virtual tokens at each <|VIRTUAL_PROMPT_k|> marker of --template, comma-separated (NeMo's virtual_token_splits); one marker takes them all" };

    /// <summary><c>--tokenizer DIR</c>: folder with the tokenizer files, for a model folder without them.</summary>
    public Option<DirectoryInfo?> Tokenizer { get; } = new("--tokenizer") { Description = "Folder with the tokenizer files, when the model folder has none" };

    /// <summary><c>--chat-template FILE</c>: a Jinja chat template for conversation data, instead of the tokenizer's.</summary>
    public Option<FileInfo?> ChatTemplateFile { get; } = new("--chat-template") { Description = "Conversation data: render with this Jinja chat template file instead of the tokenizer's (e.g. one with {% generation %} blocks)" };

    /// <summary>Adds the data options (<c>--template</c> through <c>--chat-template</c>) to <paramref name="command"/>.</summary>
    public void AddTo(Command command)
    {
        foreach (var option in new Option[] { Template, AnswerField, TruncateField, MaxLength, VirtualTokenSplits, Tokenizer, ChatTemplateFile }) command.Options.Add(option);
    }

    /// <summary>How conversation data is rendered: <c>--chat-template FILE</c>, or else the chat template of the
    /// tokenizer's folder. Read only when a data file holds conversations.</summary>
    public Func<ChatTemplate> ChatTemplates(ParseResult parse, string modelDirectory, TextTokenizer tokenizer)
    {
        var file = parse.GetValue(ChatTemplateFile);
        RequireChatTemplate(file);
        ChatTemplate? template = null;
        return () => template ??= ChatTemplateFrom(file, tokenizer, parse.GetValue(Tokenizer)?.FullName ?? modelDirectory);
    }

    /// <summary>Checked before a model is loaded, so a typo in <c>--chat-template</c> costs nothing.</summary>
    internal static void RequireChatTemplate(FileInfo? file)
    {
        if (file is { Exists: false }) throw new PeftDslException($"{file.FullName}: chat template file not found (--chat-template)");
    }

    /// <summary><c>--chat-template FILE</c> when given, else the chat template of the tokenizer read from <paramref name="tokenizerDirectory"/>.</summary>
    internal static ChatTemplate ChatTemplateFrom(FileInfo? file, TextTokenizer tokenizer, string tokenizerDirectory)
    {
        RequireChatTemplate(file);
        return file is not null ? ChatTemplate.Parse(File.ReadAllText(file.FullName), file.FullName) : ChatTemplate.Of(tokenizer, tokenizerDirectory);
    }

    /// <summary>The prompt and answer format the data options describe, validated; a malformed template or a bad
    /// <c>--virtual-token-splits</c> is a bad-input error.</summary>
    public DataFormat Format(ParseResult parse)
    {
        RequireChatTemplate(parse.GetValue(ChatTemplateFile));
        return new DataFormat(parse.GetValue(Template), parse.GetValue(AnswerField)!, parse.GetValue(TruncateField),
            VirtualTokenSplits: Splits(parse.GetValue(VirtualTokenSplits))).Validate();
    }

    private static IReadOnlyList<int>? Splits(string? text)
    {
        if (text is null) return null;
        var parts = text.Split(',', StringSplitOptions.TrimEntries);
        var numbers = new List<int>();
        foreach (var part in parts)
            numbers.Add(int.TryParse(part, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var n)
                ? n : throw new PeftDslException($"--virtual-token-splits: '{part}' is not a whole number (write them comma-separated: 10,10)"));
        return numbers;
    }

    /// <summary>Loads the tokenizer from <c>--tokenizer</c>, or else from <paramref name="modelDirectory"/>; when the model
    /// folder has none, the error says to give <c>--tokenizer DIR</c>.</summary>
    public TextTokenizer LoadTokenizer(ParseResult parse, string modelDirectory, LanguageModel model)
    {
        var given = parse.GetValue(Tokenizer)?.FullName;
        try
        {
            return TokenizerLoader.FromFolder(given ?? modelDirectory, model.ModelType, model.VocabSize);
        }
        catch (PeftDslException e) when (given is null)
        {
            throw new PeftDslException(e.Message + "; give the tokenizer's folder with --tokenizer DIR", e);
        }
    }

    /// <summary>Checked before a model is loaded, so a typo costs nothing.</summary>
    public static void RequireFiles(params string?[] paths)
    {
        foreach (var path in paths.OfType<string>())
            if (Directory.Exists(path)) throw new PeftDslException($"{path}: is a folder; give a JSONL file");
            else if (!File.Exists(path)) throw new PeftDslException($"{path}: data file not found");
    }

    /// <summary>--max-length, checked against the model's learned positions (config.json's n_positions or
    /// max_position_embeddings), so an example never fails in the middle of a run. Virtual tokens (prompt learning)
    /// take the first positions.</summary>
    public int Length(ParseResult parse, string modelDirectory, int virtualTokens = 0)
    {
        var config = Checkpoints.CheckpointFolder.ReadConfig(modelDirectory);
        var limit = PositionLimit(config);
        var requested = parse.GetValue(MaxLength);
        if (requested is { } r && r < 2) throw new PeftDslException($"--max-length must be at least 2, got {r}");
        var plus = virtualTokens > 0 ? $" plus {virtualTokens} virtual tokens" : "";
        if (limit is { } room && virtualTokens + 2 > room)
            throw new PeftDslException($"{virtualTokens} virtual tokens leave no room for an example in the model's {room} positions ({config.Source})");
        if (requested is { } asked && limit is { } l && asked + virtualTokens > l)
            throw new PeftDslException($"--max-length {asked}{plus} exceeds the model's {l} positions ({config.Source})");
        return requested ?? (int)Math.Min((limit ?? long.MaxValue) - virtualTokens, 1024);
    }

    /// <summary>The longest example when none is asked for: the model's position limit, at most 1024.</summary>
    public static int DefaultLength(string modelDirectory) =>
        (int)Math.Min(PositionLimit(Checkpoints.CheckpointFolder.ReadConfig(modelDirectory)) ?? 1024, 1024);

    private static long? PositionLimit(Config.ConfigJson config) => config.GetInt("n_positions") ?? config.GetInt("max_position_embeddings");

    /// <summary><see cref="Load(string, DataFormat, TextTokenizer, int, Func{ChatTemplate})"/>, then what only the command knows: every token id is one the model has (a
    /// tokenizer of another model would fail inside the first step), and <c>--chat-template</c> is not given for
    /// prompt/answer records, which would leave it silently unused.</summary>
    public IReadOnlyList<TokenizedExample> Load(ParseResult parse, string path, DataFormat format, TextTokenizer tokenizer, int maxLength,
        Func<ChatTemplate> chat, long modelVocab)
    {
        var examples = Load(path, format, tokenizer, maxLength, chat);
        if (parse.GetValue(ChatTemplateFile) is { } file && examples.All(e => e.Targets is null))
            throw new PeftDslException($"--chat-template {file.FullName}: {path} holds prompt/answer records, not conversations (\"messages\"), so no chat template applies");
        foreach (var e in examples)
            if (e.Prompt.Concat(e.Answer).Concat(e.Choices?.SelectMany(c => c) ?? []).FirstOrDefault(id => id >= modelVocab, -1) is var id && id >= 0)
                throw new PeftDslException($"{e.Source}: token id {id} is outside the model's vocabulary of {modelVocab}: the tokenizer ({tokenizer.Source}) is not this model's");
        return examples;
    }

    /// <summary>Reads and tokenizes a JSONL file: prompt/answer records in <paramref name="format"/>, or conversations
    /// (records with "messages") rendered by <paramref name="chat"/>'s template with the assistant's tokens marked.</summary>
    public static IReadOnlyList<TokenizedExample> Load(string path, DataFormat format, TextTokenizer tokenizer, int maxLength, Func<ChatTemplate>? chat = null)
    {
        if (!JsonlDataset.HoldsConversations(path)) return ExampleTokenizer.Tokenize(JsonlDataset.Read(path, format), tokenizer, format, maxLength);
        if (format != DataFormat.InputOutput)
            throw new PeftDslException($"{path} holds conversations, which the chat template renders: --template, --answer-field, --truncate-field " +
                                       "and --virtual-token-splits apply to prompt/answer records only");
        if (chat is null) throw new PeftDslException($"{path} holds conversations, which this command does not read");
        return ConversationTokenizer.Tokenize(Conversation.Read(path), tokenizer, chat(), maxLength);
    }
}
