using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using PeftDsl.Errors;
using PeftDsl.Tokenization;

namespace PeftDsl.Cli.Commands;

/// <summary>
/// <c>peft tokenize</c>: a tokenizer folder's ids and decodes for JSONL lines, so that they can be checked against
/// transformers from the command line. <c>{"text": …}</c> gives <c>{"ids", "ids_with_special", "decoded"}</c> (ids
/// without special tokens, with them, and ids decoded keeping special tokens); other keys are ignored, so a reference
/// file can be fed in as it is. Every line is read and checked before anything is written.
/// </summary>
public static class TokenizeCommand
{
    /// <summary>Builds <c>peft tokenize --tokenizer DIR [--input FILE]</c> (stdin without --input).</summary>
    public static Command Create()
    {
        var tokenizer = new Option<DirectoryInfo>("--tokenizer") { Description = "Folder with tokenizer.json (and tokenizer_config.json), or another tokenizer peft reads", Required = true };
        var input = new Option<FileInfo?>("--input") { Description = "JSONL lines of {\"text\": …}; stdin when left out" };
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
        var texts = new List<string>();
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
            if (record["text"] is JsonValue text && text.TryGetValue<string>(out var s)) texts.Add(s);
            else if (record.ContainsKey("messages"))
                throw new PeftDslException($"{source}:{number}: chat messages need the chat template, which peft does not render yet; give {{\"text\": …}} lines");
            else throw new PeftDslException($"{source}:{number}: has no string \"text\"");
        }
        foreach (var text in texts)
        {
            var result = new JsonObject
            {
                ["ids"] = Array(tokenizer.EncodePiece(text)),
                ["ids_with_special"] = Array(tokenizer.Encode(text)),
                ["decoded"] = tokenizer.DecodeKeepingSpecial(tokenizer.EncodePiece(text)),
            };
            output.WriteLine(result.ToJsonString(new JsonSerializerOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }));
        }
        return 0;
    }

    private static JsonArray Array(long[] ids) => new(ids.Select(id => (JsonNode)JsonValue.Create(id)).ToArray());
}
