using System.CommandLine;
using System.Globalization;
using PeftDsl.Data;
using PeftDsl.Errors;
using PeftDsl.Generation;
using PeftDsl.Models;
using PeftDsl.Runtime;
using PeftDsl.Tokenization;
using PeftDsl.Tokenization.Chat;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftDsl.Cli.Commands;

/// <summary><c>peft generate --model DIR [--adapter DIR] --prompt TEXT</c>: prints each prompt's continuation on its own
/// line. An adapter runs unmerged, through the KV cache.</summary>
public static class GenerateCommand
{
    /// <summary>Builds <c>peft generate</c>: <c>--prompt</c> or <c>--prompt-ids</c>, <c>--max-new-tokens</c> (default 32),
    /// the sampling options (any of which implies <c>--sample</c>), <c>--stop</c>, <c>--no-cache</c>, <c>--ids</c>, the adapter
    /// and device options.</summary>
    public static Command Create()
    {
        var model = new Option<DirectoryInfo>("--model") { Description = "Hugging Face checkpoint folder (GPT-2, Llama, GPT-NeoX, Mistral, Qwen2, Qwen3, Gemma 2, Gemma 3, Phi-3, T5, mT5)", Required = true };
        var prompts = new Option<string[]>("--prompt") { Description = "Prompt text; repeat for a batch", AllowMultipleArgumentsPerToken = false };
        var promptIds = new Option<string[]>("--prompt-ids") { Description = "A prompt as space-separated token ids (no tokenizer needed); repeat for a batch" };
        var maxNew = new Option<int>("--max-new-tokens") { Description = "New tokens per prompt", DefaultValueFactory = _ => 32 };
        var sample = new Option<bool>("--sample") { Description = "Sample instead of greedy decoding" };
        var temperature = new Option<double?>("--temperature") { Description = "Sampling temperature (> 0); implies --sample" };
        var topK = new Option<int?>("--top-k") { Description = "Sample from the k most likely tokens; implies --sample" };
        var topP = new Option<double?>("--top-p") { Description = "Sample from the smallest set reaching probability p, in (0, 1]; implies --sample" };
        var seed = new Option<ulong?>("--seed") { Description = "Seed for sampling; implies --sample" };
        var stop = new Option<long[]>("--stop") { Description = "Stop token id(s); default: the checkpoint's EOS", AllowMultipleArgumentsPerToken = true };
        var noCache = new Option<bool>("--no-cache") { Description = "Recompute the whole sequence at every step (slow; for checking)" };
        var pastPositions = new Option<bool>("--ignore-max-positions") { Description = "Generate past the positions a rotary model was trained for (max_position_embeddings), which is refused otherwise" };
        var ids = new Option<bool>("--ids") { Description = "Print token ids instead of text" };
        var tokenizerDir = new Option<DirectoryInfo?>("--tokenizer") { Description = "Folder with the tokenizer files, when the model folder has none" };
        var chat = new Option<string[]>("--chat") { Description = "A user message, run in the chat template with its generation prompt; stops at the end of the assistant's turn; repeat for a batch" };
        var system = new Option<string?>("--system") { Description = "With --chat: a system message before each user message" };
        var chatTemplate = new Option<FileInfo?>("--chat-template") { Description = "With --chat: this Jinja chat template file instead of the tokenizer's" };
        var command = new Command("generate", Program.Example("Continue prompts with a checkpoint (and an adapter)", "peft generate --model models/gpt2 --adapter runs/mine --prompt \"Hello\""))
        {
            model, prompts, promptIds, maxNew, sample, temperature, topK, topP, seed, stop, noCache, pastPositions, ids, tokenizerDir, chat, system, chatTemplate,
        };
        var placement = new ModelOptions();
        placement.AddTo(command);
        var adapters = new AdapterOptions();
        adapters.AddTo(command);
        command.SetAction(parse => Program.Guard(() =>
        {
            var sampling = parse.GetValue(sample) || parse.GetValue(temperature) is not null || parse.GetValue(topK) is not null
                           || parse.GetValue(topP) is not null || parse.GetValue(seed) is not null;
            var options = new GenerationOptions
            {
                MaxNewTokens = parse.GetValue(maxNew),
                DoSample = sampling,
                Temperature = parse.GetValue(temperature) ?? 1.0,
                TopK = parse.GetValue(topK) ?? 0,
                TopP = parse.GetValue(topP) ?? 1.0,
                Seed = parse.GetValue(seed),
                StopTokens = parse.GetValue(stop) ?? [],
                UseCache = !parse.GetValue(noCache),
                IgnoreMaxPositions = parse.GetValue(pastPositions),
            };
            var (adapter, use) = adapters.Read(parse);
            var messages = parse.GetValue(chat) ?? [];
            if (messages.Length == 0 && (parse.GetValue(system) is not null || parse.GetValue(chatTemplate) is not null))
                throw new PeftDslException("--system and --chat-template go with --chat MESSAGE");
            DataOptions.RequireChatTemplate(parse.GetValue(chatTemplate));
            var request = messages.Length > 0 ? new ChatRequest(messages, parse.GetValue(system), parse.GetValue(chatTemplate)) : null;
            return Run(parse.GetValue(model)!.FullName, parse.GetValue(prompts) ?? [], parse.GetValue(promptIds) ?? [],
                options, parse.GetValue(ids), Console.Out, placement.Read(parse), adapter, use, parse.GetValue(tokenizerDir)?.FullName, request);
        }));
        return command;
    }

    /// <summary>Loads the model in <paramref name="directory"/> (with <paramref name="adapter"/>, running <paramref name="use"/>)
    /// and writes one continuation per prompt to <paramref name="output"/>, as text or, with <paramref name="printIds"/>, as
    /// token ids; a single prompt streams as it is produced. Prompts come from <paramref name="texts"/> or
    /// <paramref name="idLists"/>, never both. Returns 0; bad input throws a bad-input error.</summary>
    public static int Run(string directory, string[] texts, string[] idLists, GenerationOptions options, bool printIds, TextWriter output,
        ModelLoadOptions? placement = null, string? adapter = null, IReadOnlyList<string>? use = null, string? tokenizerDirectory = null,
        ChatRequest? chat = null)
    {
        if (new[] { texts.Length, idLists.Length, chat?.Messages.Count ?? 0 }.Count(n => n > 0) > 1)
            throw new PeftDslException("give prompts one way: --prompt text, --prompt-ids or --chat messages");
        if (texts.Length + idLists.Length + (chat?.Messages.Count ?? 0) == 0)
            throw new PeftDslException("no prompt: give --prompt TEXT, --prompt-ids \"1 2 3\" or --chat MESSAGE");
        options.Validate();   // before loading a model that could take minutes; TextGenerator checks again for library callers
        using var scope = NewDisposeScope();
        var model = StockModels.LoadGenerative(directory, placement);
        using var _ = (nn.Module)model;
        var loaded = AdapterOptions.Attach((LanguageModel)model, adapter, use ?? []);
        var tokenizer = texts.Length > 0 || chat is not null || !printIds ? Tokenizer(tokenizerDirectory ?? directory, model.VocabSize, texts.Length == 0, tokenizerDirectory is null) : null;
        var format = PromptFormat((LanguageModel)model, adapter, loaded);
        if (format is not null && texts.Length == 0 && !idLists.Select(ParseIds).Any(ids => ids.Any(id => id < 0)))
            throw new PeftDslException($"{adapter}: its prompt task was trained with the template \"{format.Template}\"; give the prompt as --prompt text " +
                                       "(the template is applied to it), or put the virtual-prompt slots (negative ids) in --prompt-ids yourself");
        if (format is not null && chat is not null)
            throw new PeftDslException($"{adapter}: its prompt task was trained with the template \"{format.Template}\", not in a chat template; give the prompt as --prompt text");
        var template = chat is null ? null : DataOptions.ChatTemplateFrom(chat.TemplateFile, tokenizer!, tokenizerDirectory ?? directory);
        var prompts = template is not null ? chat!.Messages.Select(m => ChatPrompt.Encode(template, tokenizer!, m, chat.System)).ToList()
            : texts.Length > 0
            ? texts.Select(t => format is null ? tokenizer!.Encode(t) : ExampleTokenizer.EncodePrompt(tokenizer!, format, new Dictionary<string, string> { [format.InputField] = t })).ToList()
            : idLists.Select(ParseIds).ToList();
        // A --stop id the model cannot produce would never stop the run (a checkpoint's own EOS outside a tiny
        // test vocabulary is only never matched).
        if (options.StopTokens.FirstOrDefault(t => t >= model.VocabSize, -1) is var stop && stop >= 0)
            throw new PeftDslException($"--stop {stop}: outside the model's vocabulary of {model.VocabSize}, so it could never stop a run");
        var lm = (LanguageModel)model;
        if (lm.Prompts.Names.Count > 1 && lm.Prompts.Active is null)
            throw new PeftDslException($"{adapter} holds several prompt tasks ({string.Join(", ", lm.Prompts.Names)}): choose one with --use NAME");
        // Checked before decoding starts (TextGenerator checks again): a model with learned positions cannot go past them.
        try
        {
            TextGenerator.CheckPositions(model, prompts, options);
        }
        catch (PeftDslException e)
        {
            throw new PeftDslException($"--prompt and --max-new-tokens {options.MaxNewTokens}: {e.Message}");
        }
        var checkpoint = GenerationDefaults.FromFolder(directory);
        if (template is not null && options.StopTokens.Count == 0)
        {
            // A chat reply ends with the template's end-of-turn token, which is not always the checkpoint's EOS
            // (Gemma 3 ends a turn with <end_of_turn>); either stops it.
            long?[] ends = [ChatPrompt.EndOfTurn(template, tokenizer!), tokenizer!.Eos, .. checkpoint.EosTokenIds.Select(id => (long?)id)];
            options = options with { StopTokens = ends.OfType<long>().Where(id => id < model.VocabSize).Distinct().ToList() };
        }
        var defaults = checkpoint.ApplyTo(options, padGiven: false);
        if (!printIds && tokenizer is not null && tokenizer.VocabSize < model.VocabSize)
        {
            // A vocabulary padded past the tokenizer's (Pythia): ids with no text are never chosen.
            Console.Error.WriteLine($"note: the model has {model.VocabSize} token ids, the tokenizer {tokenizer.VocabSize}; only ids the tokenizer can decode are generated");
            defaults = defaults with { VocabLimit = tokenizer.VocabSize };
        }
        if (prompts.Count == 1)
        {
            // One prompt: stream the continuation as it is produced (text is re-decoded so multi-token characters print whole).
            var sofar = new List<long>();
            var printed = 0;
            defaults = defaults with
            {
                OnStep = step =>
                {
                    if (step[0] is not { } token) return;
                    sofar.Add(token);
                    var text = printIds || tokenizer is null ? string.Join(" ", sofar) : tokenizer.Decode(sofar);
                    if (text.Length > printed && !text.EndsWith('\uFFFD'))
                    {
                        output.Write(text[printed..]);
                        output.Flush();
                        printed = text.Length;
                    }
                },
            };
            var tokens = TextGenerator.Generate(model, prompts, defaults)[0];
            var full = printIds || tokenizer is null ? string.Join(" ", tokens) : tokenizer.Decode(tokens);
            output.WriteLine(full.Length > printed ? full[printed..] : "");
            return 0;
        }
        foreach (var tokens in TextGenerator.Generate(model, prompts, defaults))
            output.WriteLine(printIds || tokenizer is null ? string.Join(" ", tokens) : tokenizer.Decode(tokens));
        return 0;
    }

    /// <summary>
    /// A prompt table's task trained with NeMo's template (virtual-prompt markers around the input) runs with that
    /// template, as <c>peft eval</c> does: the prompt text fills its input field and the markers become the task's slots.
    /// Putting the virtual tokens in front instead would run another prompt than the one trained. A template with other
    /// fields than the input cannot be filled from --prompt and is refused. Null when the task has no template.
    /// </summary>
    private static DataFormat? PromptFormat(LanguageModel model, string? adapter, IReadOnlyList<string> loaded)
    {
        if (adapter is null || !Peft.Prompts.PromptTableFile.IsTable(adapter) || model.Prompts.Active is not { } task) return null;
        var format = EvalCommand.TableFormat(adapter, [task], DataFormat.InputOutput, given: false);
        if (format.Template is null) return null;
        if (format.PromptFields.Any(f => f != format.InputField))
            throw new PeftDslException($"{adapter}: task '{task}' was trained with the template \"{format.Template}\", whose fields " +
                                       $"({string.Join(", ", format.PromptFields)}) --prompt cannot fill; run it with peft eval on records that have them");
        return format.ForVirtualTokens(model.Prompts[task].NumVirtualTokens);
    }

    /// <summary>The folder's tokenizer; with --prompt-ids only the output needs one, and --ids avoids that.</summary>
    private static TextTokenizer Tokenizer(string directory, long vocab, bool promptIdsOnly, bool fromModelFolder)
    {
        try
        {
            return TokenizerLoader.FromFolder(directory, fromModelFolder ? StockModels.ModelTypeOf(directory) : null, vocab);
        }
        catch (PeftDslException e) when (promptIdsOnly || fromModelFolder)
        {
            var hint = promptIdsOnly ? "; to print token ids instead of text, add --ids" : "; give the tokenizer's folder with --tokenizer DIR";
            throw new PeftDslException(e.Message + hint, e);
        }
    }

    /// <summary><c>--chat</c>: user messages to run in the chat template, with an optional system message and template file.</summary>
    public sealed record ChatRequest(IReadOnlyList<string> Messages, string? System, FileInfo? TemplateFile);

    private static long[] ParseIds(string text)
    {
        var parts = text.Split([' ', ','], StringSplitOptions.RemoveEmptyEntries);
        return parts.Select(p => long.TryParse(p, NumberStyles.Integer, CultureInfo.InvariantCulture, out var id)
            ? id
            : throw new PeftDslException($"--prompt-ids: '{p}' is not a token id")).ToArray();
    }
}
