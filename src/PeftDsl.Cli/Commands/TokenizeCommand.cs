using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using PeftDsl.Errors;
using PeftDsl.Tokenization;
using Chat = PeftDsl.Tokenization.Chat;

namespace PeftDsl.Cli.Commands;

/// <summary>
/// <c>peft tokenize</c>: a tokenizer folder's ids and decodes for JSONL lines, so that they can be checked against
/// transformers from the command line. <c>{"text": …}</c> gives <c>{"ids", "ids_with_special", "decoded"}</c> (ids
/// without special tokens, with them, and ids decoded keeping special tokens); <c>{"messages": […],
/// "add_generation_prompt": …}</c> gives <c>{"rendered", "ids"}</c> (the chat template's render and its ids, no special
/// tokens added); other keys are ignored, so a reference file can be fed in as it is. Every line is read and checked
/// before anything is written.
/// </summary>
public static class TokenizeCommand
{
    /// <summary>Builds <c>peft tokenize --tokenizer DIR [--input FILE]</c> (stdin without --input).</summary>
    public static Command Create()
    {
        var tokenizer = new Option<DirectoryInfo>("--tokenizer") { Description = "Folder with tokenizer.json (and tokenizer_config.json), or another tokenizer peft reads", Required = true };
        var input = new Option<FileInfo?>("--input") { Description = "JSONL lines of {\"text\": …} or {\"messages\": […], \"add_generation_prompt\": true|false}; stdin when left out" };
        var command = new Command("tokenize", Program.Example("Token ids and decodes of JSONL texts, one JSON line out per line in",
            "peft tokenize --tokenizer models/qwen3 --input texts.jsonl")) { tokenizer, input };
        command.SetAction(parse => Program.Guard(() =>
        {
            var file = parse.GetValue(input);
            using var reader = file is null ? Console.In : OpenInput(file.FullName);
            return Run(parse.GetValue(tokenizer)!.FullName, reader, file?.FullName ?? "stdin", Console.Out);
        }));
        return command;
    }

    private static TextReader OpenInput(string path) =>
        File.Exists(path) ? new StreamReader(path) : throw new PeftDslException($"{path}: file not found");

    /// <summary>Tokenizes every line of <paramref name="input"/> (named <paramref name="source"/> in errors).</summary>
    public static int Run(string directory, TextReader input, string source, TextWriter output)
    {
        var tokenizer = TokenizerLoader.FromFolder(directory, modelType: null, vocabSize: 0);
        var lines = new List<JsonObject>();
        Chat.ChatTemplate? template = null;
        var number = 0;
        for (var line = input.ReadLine(); line is not null; line = input.ReadLine())
        {
            number++;
            if (line.Trim().Length == 0) throw new PeftDslException($"{source}:{number}: empty line; every line is one JSON object");
            JsonNode? node;
            try
            {
                node = JsonNode.Parse(line);
            }
            catch (JsonException e)
            {
                throw new PeftDslException($"{source}:{number}: not valid JSON ({e.Message})");
            }
            if (node is not JsonObject record) throw new PeftDslException($"{source}:{number}: not a JSON object");
            if (record["text"] is JsonValue text && text.TryGetValue<string>(out var s))
            {
                var ids = tokenizer.EncodePiece(s);
                lines.Add(new JsonObject
                {
                    ["ids"] = Array(ids),
                    ["ids_with_special"] = Array(tokenizer.Encode(s)),
                    ["decoded"] = tokenizer.DecodeKeepingSpecial(ids),
                });
            }
            else if (record["messages"] is JsonArray messages)
            {
                template ??= Chat.ChatTemplate.Of(tokenizer, directory);
                var generationPrompt = record["add_generation_prompt"] switch
                {
                    null => false,
                    JsonValue v when v.TryGetValue<bool>(out var b) => b,
                    _ => throw new PeftDslException($"{source}:{number}: \"add_generation_prompt\" is not true or false"),
                };
                var rendered = RenderLine(template, messages, generationPrompt, tokenizer, source, number);
                lines.Add(new JsonObject { ["rendered"] = rendered, ["ids"] = Array(tokenizer.EncodePiece(rendered)) });
            }
            else throw new PeftDslException($"{source}:{number}: has neither a string \"text\" nor a \"messages\" list");
        }
        var options = new JsonSerializerOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
        foreach (var line in lines) output.WriteLine(line.ToJsonString(options));
        return 0;
    }

    private static string RenderLine(Chat.ChatTemplate template, JsonArray messages, bool generationPrompt, TextTokenizer tokenizer, string source, int number)
    {
        using var document = JsonDocument.Parse(messages.ToJsonString());
        try
        {
            return template.Render(document.RootElement, generationPrompt, tokenizer.Config).Text;
        }
        catch (PeftDslException e)
        {
            throw new PeftDslException($"{source}:{number}: {e.Message}", e);
        }
    }

    private static JsonArray Array(long[] ids) => new(ids.Select(id => (JsonNode)JsonValue.Create(id)).ToArray());
}
