using System.Text.Json;
using PeftDsl.Checkpoints.Safetensors;
using PeftDsl.Models;
using PeftDsl.Peft.Lora;
using PeftDsl.Peft.Prompts;
using PeftDsl.Runtime;
using TorchSharp;
using static TorchSharp.torch;

// Usage: dotnet run --project tools/PeftInterop -- FIXTURES OUT
// For every case below: build the adapter in PeftDsl, save it in peft's format, and record our eval logits (and,
// for merged cases, a merged model folder and its logits). check.py then loads each with peft/transformers.
var fixtures = args.Length > 0 ? args[0] : "tests/fixtures/hf-peft";
var output = args.Length > 1 ? args[1] : "tools/PeftInterop/out";
Directory.CreateDirectory(output);
manual_seed(0);

LoraConfig Random(params string[] targets) => new() { R = 4, Alpha = 8, TargetModules = targets, InitLoraWeights = LoraInit.Off };

var cases = new (string Name, string Family, Func<LanguageModel, string[]> Build, string[]? Rows, bool Merge)[]
{
    // NeMo site names + layer selection + rank pattern: saved as peft module names.
    ("gpt2.nemo_names", "gpt2", m => { m.Adapters.Add("default", Random("attention_qkv", "mlp_fc2") with { LayersToTransform = [1], RankPattern = new Dictionary<string, int> { ["c_attn"] = 2 } }); return ["default"]; }, null, true),
    ("gpt2.dora_rslora", "gpt2", m => { m.Adapters.Add("default", Random("c_attn", "c_fc") with { UseDora = true, UseRsLora = true, Alpha = 16 }); return ["default"]; }, null, true),
    ("gpt2.multi", "gpt2", m =>
    {
        m.Adapters.Add("a", Random("c_attn"));
        m.Adapters.Add("b", Random("c_attn", "mlp") with { R = 2, Alpha = 3 });
        m.Adapters.AddWeighted(["a", "b"], [0.5, -2], "mix", "cat");
        return ["a", "b", "mix"];
    }, ["mix", "a", "b"], false),
    ("llama.all_patterns", "llama", m => { m.Adapters.Add("default", Random("all") with { AlphaPattern = new Dictionary<string, double> { ["down_proj"] = 2 }, ExcludeModules = ["o_proj"] }); return ["default"]; }, null, true),
    ("llama.dora", "llama", m => { m.Adapters.Add("default", Random("q_proj", "v_proj", "up_proj") with { UseDora = true }); return ["default"]; }, null, true),
    ("t5.attention", "t5", m => { m.Adapters.Add("default", Random("attention") with { RankPattern = new Dictionary<string, int> { ["EncDecAttention.k"] = 6 } }); return ["default"]; }, null, true),
    ("mt5.mlp", "mt5", m => { m.Adapters.Add("default", Random("mlp", "LORA_Q") with { Dropout = 0.1 }); return ["default"]; }, null, true),
    // Prompt learning: peft loads the saved rows (P-tuning's encoder output) and must compute the same logits.
    ("gpt2.ptuning_nemo", "gpt2", m => Prompt(m, new PromptConfig { Method = PromptMethod.PTuning, NumVirtualTokens = 6, EncoderType = PromptEncoderType.NemoMlp, EncoderHiddenSize = 24 }), null, false),
    ("llama.prompt_vocab", "llama", m => Prompt(m, new PromptConfig { Method = PromptMethod.PromptTuning, NumVirtualTokens = 3, Init = PromptInit.SampleVocab }), null, false),
    ("llama.prefix_gqa", "llama", m => Prompt(m, new PromptConfig { Method = PromptMethod.PrefixTuning, NumVirtualTokens = 5, PrefixProjection = true, EncoderHiddenSize = 16 }), null, false),
    ("gpt2.prefix", "gpt2", m => Prompt(m, new PromptConfig { Method = PromptMethod.PrefixTuning, NumVirtualTokens = 2 }), null, false),
    ("t5.ptuning_lstm", "t5", m => Prompt(m, new PromptConfig { Method = PromptMethod.PTuning, NumVirtualTokens = 4, EncoderType = PromptEncoderType.Lstm, EncoderHiddenSize = 8 }), null, false),
    ("mt5.prompt", "mt5", m => Prompt(m, new PromptConfig { Method = PromptMethod.PromptTuning, NumVirtualTokens = 3 }), null, false),
};

// A prompt task, scaled up so that a wrong insertion shows in the logits of the tiny random models.
string[] Prompt(LanguageModel m, PromptConfig config)
{
    m.Prompts.Add("default", config);
    using (no_grad())
        foreach (var p in m.Prompts.Task("default").parameters()) p.mul_(3);
    return ["default"];
}

var manifest = new List<object>();
foreach (var (name, family, build, rows, merge) in cases)
{
    var baseDir = Path.GetFullPath(Path.Combine(fixtures, family + "-base"));
    using var model = (LanguageModel)StockModels.LoadGenerative(baseDir);
    var adapters = build(model);
    var adapterDir = Path.Combine(output, name);
    var prompt = model.Prompts.Names.Count > 0;
    if (prompt) model.Prompts.Save(adapterDir, "default");
    else model.Adapters.Save(adapterDir);
    model.eval();
    using var scope = NewDisposeScope();
    var generator = new Generator(1);
    var ids = randint(2, model.VocabSize, [3, 7], generator: generator);
    var mask = ones(3, 7, dtype: ScalarType.Int64);
    mask[2, TensorIndex.Slice(4)] = 0;
    var decoderIds = randint(2, model.VocabSize, [3, 5], generator: generator);
    Tensor Logits(IReadOnlyList<string>? perRow = null) => model switch
    {
        CausalLanguageModel causal => causal.Forward(ids, mask, adapterNames: perRow).Logits,
        Seq2SeqLanguageModel s2s => s2s.Forward(ids, mask, decoderIds, adapterNames: perRow).Logits,
        _ => throw new InvalidOperationException(),
    };
    var tensors = new Dictionary<string, Tensor> { ["input_ids"] = ids, ["attention_mask"] = mask, ["decoder_input_ids"] = decoderIds };
    using (no_grad())
    {
        foreach (var adapter in adapters)
        {
            if (!prompt) model.Adapters.SetActive(adapter);
            tensors["logits_" + adapter] = Logits();
        }
        if (rows is not null) tensors["mixed_logits"] = Logits(rows);
        if (merge)
        {
            model.Adapters.SetActive(adapters[0]);
            model.Adapters.MergeAndUnload();
            tensors["merged_logits"] = Logits();
            var mergedDir = Path.Combine(output, name + ".merged");
            Directory.CreateDirectory(mergedDir);
            File.Copy(Path.Combine(baseDir, "config.json"), Path.Combine(mergedDir, "config.json"), overwrite: true);
            model.SaveWeights(Path.Combine(mergedDir, "model.safetensors"));
        }
    }
    SafetensorsWriter.Save(Path.Combine(output, name + ".ours.safetensors"), tensors);
    manifest.Add(new { name, family, kind = model is CausalLanguageModel ? "causal" : "seq2seq", base_dir = baseDir, adapters, mixed_rows = rows, merged = merge });
    Console.WriteLine($"wrote {name}");
}
File.WriteAllText(Path.Combine(output, "manifest.json"), JsonSerializer.Serialize(manifest, new JsonSerializerOptions { WriteIndented = true }));
