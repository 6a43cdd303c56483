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
    /// <summary>The absolute path with every symbolic link on the way resolved, so two names of one folder compare equal.</summary>
    private static string Full(string path)
    {
        var full = Path.GetFullPath(path).TrimEnd(Path.DirectorySeparatorChar);
        var parts = full.Split(Path.DirectorySeparatorChar, StringSplitOptions.RemoveEmptyEntries);
        var resolved = Path.DirectorySeparatorChar.ToString();
        foreach (var part in parts)
        {
            resolved = Path.Combine(resolved, part);
            if (!Directory.Exists(resolved)) continue;   // a part not created yet is no link
            var link = new DirectoryInfo(resolved).ResolveLinkTarget(returnFinalTarget: true);
            if (link is not null) resolved = link.FullName.TrimEnd(Path.DirectorySeparatorChar);
        }
        return resolved;
    }

    /// <summary>Files of the base folder that a merged model still needs (tokenizer, generation defaults).</summary>
    private static readonly string[] Carried =
    [
        "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
        "tokenizer.model", "spiece.model", "vocab.json", "merges.txt", "added_tokens.json",
    ];

    /// <summary>What the merge writes beside the carried files: where the model came from, so that a later
    /// <c>--overwrite</c> can tell a merged folder from one holding anything else.</summary>
    private const string Marker = "peftdsl_merge.json";

    /// <summary>Every name a merge writes into its folder: --overwrite replaces a folder holding only these.</summary>
    private static readonly string[] Written = [.. Carried, CheckpointFolder.SingleFile, Marker];

    /// <summary>Builds <c>peft merge</c>: <c>--model</c>, <c>--adapter</c> (required), <c>--use</c>, <c>--out</c>,
    /// <c>--overwrite</c> and <c>--dtype</c>; merging always runs on the CPU.</summary>
    public static Command Create()
    {
        var model = new Option<DirectoryInfo>("--model") { Description = "Hugging Face checkpoint folder (GPT-2, Llama, GPT-NeoX, Mistral, Qwen2, Qwen3, Gemma 2, Gemma 3, Phi-3, T5, mT5)", Required = true };
        var output = new Option<DirectoryInfo>("--out") { Description = "Folder to write the merged model to; it must not exist or be empty unless --overwrite", Required = true };
        var overwrite = new Option<bool>("--overwrite") { Description = "Replace a folder an earlier peft merge wrote (atomically); a folder holding anything else is refused" };
        var command = new Command("merge", Program.Example("Merge a LoRA adapter into its base model and save a Hugging Face model folder", "peft merge --model models/gpt2 --adapter runs/mine --out models/gpt2-mine")) { model, output, overwrite };
        var adapters = new AdapterOptions(required: true);
        adapters.AddTo(command);
        var placement = new ModelOptions();
        command.Options.Add(placement.DType);
        command.SetAction(parse => Program.Guard(() =>
        {
            var (adapter, use) = adapters.Read(parse);
            return Run(parse.GetValue(model)!.FullName, adapter!,
                use, parse.GetValue(output)!.FullName, ModelOptions.Parse("cpu", parse.GetValue(placement.DType)!), Console.Out, parse.GetValue(overwrite));
        }));
        return command;
    }

    /// <summary>Merges the LoRA/IA3 adapters <paramref name="use"/> of <paramref name="adapter"/> into the model in
    /// <paramref name="directory"/> and writes the merged Hugging Face folder to <paramref name="output"/> atomically, logging
    /// progress to <paramref name="log"/>. Returns 0; an <paramref name="output"/> that overlaps an input, is a file or a link,
    /// or is not empty without <paramref name="overwrite"/>, and prompt-learning or bottleneck adapters, are bad-input errors.</summary>
    public static int Run(string directory, string adapter, IReadOnlyList<string> use, string output, ModelLoadOptions placement, TextWriter log,
        bool overwrite = false)
    {
        var target = Full(output);
        foreach (var (source, what) in new[] { (directory, "the base model folder"), (adapter, "the adapter folder") })
            if (target == Full(source) || Full(source).StartsWith(target + Path.DirectorySeparatorChar, StringComparison.Ordinal))
                throw new PeftDslException($"--out {output} is or contains {what}; write the merged model elsewhere");
        if (File.Exists(target)) throw new PeftDslException($"--out {output} is a file");
        var given = Path.GetFullPath(output).TrimEnd(Path.DirectorySeparatorChar);
        if (new DirectoryInfo(given).LinkTarget is not null)
            throw new PeftDslException($"--out {output} is a symbolic link; give the real folder (replacing a link's target is not what a merge should do)");
        if (Directory.Exists(target) && Directory.EnumerateFileSystemEntries(target).Any())
        {
            if (!overwrite) throw new PeftDslException($"--out {output} exists and is not empty; pass --overwrite to replace the merged model it holds");
            // Replacing the folder whole would delete what the user keeps beside a model: only a merge's own folder goes.
            var foreign = Directory.EnumerateFileSystemEntries(target).Where(e => Directory.Exists(e) || !Written.Contains(Path.GetFileName(e)))
                .Select(Path.GetFileName).Order(StringComparer.Ordinal).ToList();
            if (foreign.Count > 0)
                throw new PeftDslException($"--out {output} holds {foreign[0]}{(foreign.Count > 1 ? $" and {foreign.Count - 1} more" : "")}, which a merge does not " +
                                           "write; --overwrite replaces only a folder peft merge wrote: move it away or choose another folder");
            if (!File.Exists(Path.Combine(target, Marker)))
                throw new PeftDslException($"--out {output} is a model folder peft merge did not write (it has no {Marker}); --overwrite replaces only " +
                                           "a merged model: empty it or choose another folder");
        }
        log.WriteLine($"loading {directory} ({placement.DType})");
        using var model = (LanguageModel)StockModels.LoadGenerative(directory, placement);
        var active = AdapterOptions.Attach(model, adapter, use);
        // Virtual tokens are not weights: a prompt-learning adapter has nothing to fold into the model.
        if (model.Prompts.Names.Count > 0)
            throw new PeftDslException($"{adapter}: prompt-learning adapters ({string.Join(", ", model.Prompts.Names)}) put virtual tokens before the input; they cannot be merged into the weights");
        if (model.Bottleneck.Names.Count > 0)
            throw new PeftDslException($"{adapter}: bottleneck adapters ({string.Join(", ", model.Bottleneck.Names)}) add layers with a nonlinearity; they cannot be merged into the weights");
        log.WriteLine($"merging {string.Join(" + ", active)} from {adapter}");
        model.Adapters.MergeAndUnload();
        model.Ia3.MergeAndUnload();
        log.WriteLine($"writing {output}");
        AtomicFolder.Write(output, staging =>
        {
            foreach (var file in Carried.Where(f => File.Exists(Path.Combine(directory, f))))
                File.Copy(Path.Combine(directory, file), Path.Combine(staging, file));
            RecordDType(Path.Combine(staging, "config.json"), placement.DType);
            model.SaveWeights(Path.Combine(staging, CheckpointFolder.SingleFile));
            File.WriteAllText(Path.Combine(staging, Marker), new System.Text.Json.Nodes.JsonObject
            {
                ["base_model"] = Path.GetFullPath(directory),
                ["adapter"] = Path.GetFullPath(adapter),
                ["merged_adapters"] = new System.Text.Json.Nodes.JsonArray(active.Select(a => (System.Text.Json.Nodes.JsonNode)a).ToArray()),
                ["dtype"] = placement.DType.ToString(),
            }.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));
        }, keepOthers: false);   // only a merge's own files were there (checked above): none of the old ones stays
        log.WriteLine($"wrote the merged model (base + {string.Join(" + ", active)}) to {output}; the base folder is unchanged");
        return 0;
    }

    /// <summary>config.json says which dtype the weights are in; after --dtype bf16 it must say bfloat16.</summary>
    private static void RecordDType(string configPath, TorchSharp.torch.ScalarType dtype)
    {
        if (!File.Exists(configPath)) return;
        var config = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(configPath))!.AsObject();
        var name = dtype switch
        {
            TorchSharp.torch.ScalarType.BFloat16 => "bfloat16",
            TorchSharp.torch.ScalarType.Float16 => "float16",
            _ => "float32",
        };
        foreach (var key in new[] { "dtype", "torch_dtype" }.Where(config.ContainsKey)) config[key] = name;
        if (!config.ContainsKey("dtype") && !config.ContainsKey("torch_dtype")) config["dtype"] = name;
        File.WriteAllText(configPath, config.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));
    }
}
