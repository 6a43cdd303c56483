using System.CommandLine;
using PeftDsl.Checkpoints;
using PeftDsl.Errors;
using PeftDsl.Models;
using PeftDsl.Runtime;

namespace PeftDsl.Cli.Commands;

/// <summary>
/// <c>peft merge --model DIR --adapter DIR --out DIR</c>: folds the adapter into the base weights and writes a
/// Hugging Face model folder (config.json, model.safetensors, and the base folder's tokenizer and generation files),
/// which this project and transformers load as a plain model.
/// </summary>
public static class MergeCommand
{
    /// <summary>Files of the base folder that a merged model still needs (tokenizer, generation defaults).</summary>
    private static readonly string[] Carried =
    [
        "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
        "tokenizer.model", "spiece.model", "vocab.json", "merges.txt", "added_tokens.json",
    ];

    public static Command Create()
    {
        var model = new Option<DirectoryInfo>("--model") { Description = "Hugging Face checkpoint folder (GPT-2, Llama, T5, mT5)", Required = true };
        var output = new Option<DirectoryInfo>("--out") { Description = "Folder to write the merged model to (replaced atomically)", Required = true };
        var command = new Command("merge", "Merge a LoRA adapter into its base model and save a Hugging Face model folder") { model, output };
        var adapters = new AdapterOptions();
        adapters.AddTo(command);
        var placement = new ModelOptions();
        command.Options.Add(placement.DType);
        command.SetAction(parse => Program.Guard(() =>
        {
            var (adapter, use) = adapters.Read(parse);
            return Run(parse.GetValue(model)!.FullName, adapter ?? throw new PeftDslException("--adapter is required: which adapter to merge"),
                use, parse.GetValue(output)!.FullName, ModelOptions.Parse("cpu", parse.GetValue(placement.DType)!), Console.Out);
        }));
        return command;
    }

    public static int Run(string directory, string adapter, IReadOnlyList<string> use, string output, ModelLoadOptions placement, TextWriter log)
    {
        if (Path.GetFullPath(output).TrimEnd('/') == Path.GetFullPath(directory).TrimEnd('/'))
            throw new PeftDslException($"--out {output} is the base model folder; write the merged model elsewhere");
        using var model = (LanguageModel)StockModels.LoadGenerative(directory, placement);
        var active = AdapterOptions.Attach(model, adapter, use);
        model.Adapters.MergeAndUnload();
        AtomicFolder.Write(output, staging =>
        {
            foreach (var file in Carried.Where(f => File.Exists(Path.Combine(directory, f))))
                File.Copy(Path.Combine(directory, file), Path.Combine(staging, file));
            model.SaveWeights(Path.Combine(staging, CheckpointFolder.SingleFile));
        });
        log.WriteLine($"merged {string.Join(" + ", active)} into {directory}: wrote {Path.Combine(output, CheckpointFolder.SingleFile)}");
        return 0;
    }
}
