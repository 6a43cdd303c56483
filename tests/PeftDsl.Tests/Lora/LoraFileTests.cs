using System.Text.Json.Nodes;
using PeftDsl.Checkpoints;
using PeftDsl.Checkpoints.Safetensors;
using PeftDsl.Errors;
using PeftDsl.Models.Gpt2;
using PeftDsl.Models.Llama;
using PeftDsl.Models.T5;
using PeftDsl.Peft.Lora;
using PeftDsl.Runtime;
using Xunit;
using static TorchSharp.torch;

namespace PeftDsl.Tests.Lora;

/// <summary>peft's adapter folder format, both directions, and every way a folder can be wrong.</summary>
public sealed class LoraFileTests
{
    private static string Case(string name) => Path.Combine(Fixtures.Directory, name);

    private static LanguageModel Base(string family) => family switch
    {
        "gpt2" => Gpt2LMHeadModel.FromPretrained(Fixtures.Base("gpt2")),
        "llama" => LlamaForCausalLM.FromPretrained(Fixtures.Base("llama")),
        _ => T5ForConditionalGeneration.FromPretrained(Fixtures.Base(family)),
    };

    /// <summary>What we save for a peft adapter is what peft saved: the same config fields and values, the same
    /// tensor keys, shapes, values and file metadata.</summary>
    [Theory]
    [InlineData("gpt2.lora")]
    [InlineData("gpt2.rslora")]
    [InlineData("llama.dora")]
    [InlineData("t5.lora")]
    [InlineData("mt5.lora")]
    public void SavingALoadedAdapterWritesWhatPeftWrote(string name)
    {
        using var model = Base(name.Split('.')[0]);
        model.Adapters.Load(Case(name));
        using var dir = new TempDir();
        model.Adapters.Save(dir.Path);

        var ours = JsonNode.Parse(File.ReadAllText(dir.File("adapter_config.json")))!.AsObject();
        var theirs = JsonNode.Parse(File.ReadAllText(Path.Combine(Case(name), "adapter_config.json")))!.AsObject();
        Assert.Equal(theirs.Select(p => p.Key).Order(), ours.Select(p => p.Key).Order());
        foreach (var (key, value) in theirs)
        {
            if (key == "target_modules") Assert.Equal(Names(value).Order(), Names(ours[key]).Order());   // peft saves a set
            else Assert.True(JsonNode.DeepEquals(value, ours[key]), $"{key}: ours {ours[key]?.ToJsonString()}, peft {value?.ToJsonString()}");
        }

        using var saved = SafetensorsReader.Open(dir.File("adapter_model.safetensors"));
        using var reference = SafetensorsReader.Open(Path.Combine(Case(name), "adapter_model.safetensors"));
        Assert.Equal(reference.Entries.Keys.Order(), saved.Entries.Keys.Order());
        Assert.Equal(reference.Metadata, saved.Metadata);
        foreach (var key in reference.Entries.Keys)
        {
            Assert.Equal(reference.Entries[key].Shape, saved.Entries[key].Shape);
            Assert.True(saved.Read(key).equal(reference.Read(key)).all().item<bool>(), key);
        }
    }

    [Fact]
    public void SeveralAdaptersSaveIntoSubfoldersAndLoadBack()
    {
        using var model = Base("gpt2");
        foreach (var n in new[] { "a", "b" }) model.Adapters.Load(Path.Combine(Case("gpt2.multi_lora"), n), n);
        using var dir = new TempDir();
        model.Adapters.Save(dir.Path);
        Assert.False(File.Exists(dir.File("adapter_config.json")));   // no adapter is called default
        Assert.True(File.Exists(Path.Combine(dir.Path, "a", "adapter_model.safetensors")));
        Assert.True(File.Exists(Path.Combine(dir.Path, "b", "adapter_config.json")));

        using var again = Base("gpt2");
        Assert.Equal(["a", "b"], again.Adapters.LoadAll(dir.Path));
        using var scope = NewDisposeScope();
        var (ids, mask) = LoraMathTests.Batch();
        string[] rows = ["b", "a", "__base__"];
        model.eval();
        again.eval();
        LoraMathTests.AssertClose(((CausalLanguageModel)again).Forward(ids, mask, adapterNames: rows).Logits,
            ((CausalLanguageModel)model).Forward(ids, mask, adapterNames: rows).Logits, 0);
    }

    /// <summary>NeMo site names mean nothing to peft: the saved target_modules are the module names that select the
    /// same projections, and loading the saved folder attaches to exactly those.</summary>
    [Fact]
    public void NemoTargetsAreSavedAsPeftModuleNames()
    {
        using var model = Base("gpt2");
        model.Adapters.Add("default", new LoraConfig { TargetModules = ["attention_qkv", "mlp_fc2"], LayersToTransform = [1] });
        using var dir = new TempDir();
        model.Adapters.Save(dir.Path);
        var config = JsonNode.Parse(File.ReadAllText(dir.File("adapter_config.json")))!;
        Assert.Equal(["c_attn", "mlp.c_proj"], Names(config["target_modules"]).Order());
        Assert.Equal("[1]", config["layers_to_transform"]!.ToJsonString());
        Assert.True(config["fan_in_fan_out"]!.GetValue<bool>());

        using var again = Base("gpt2");
        again.Adapters.Load(dir.Path);
        Assert.Equal(Targets(model), Targets(again));
        Assert.Equal(["transformer.h.1.attn.c_attn", "transformer.h.1.mlp.c_proj"], Targets(again));
    }

    [Fact]
    public void UnknownFieldsAtNoOpValuesAreKeptAndOthersRefusedByName()
    {
        using var dir = CopyCase("gpt2.lora");
        Edit(dir, c => c["future_option"] = null);
        using var model = Base("gpt2");
        model.Adapters.Load(dir.Path);
        using var saved = new TempDir();
        model.Adapters.Save(saved.Path);
        Assert.True(JsonNode.Parse(File.ReadAllText(saved.File("adapter_config.json")))!.AsObject().ContainsKey("future_option"));

        Edit(dir, c => c["future_option"] = "on");
        AssertRefused(dir, "unknown field 'future_option' = \"on\"");
    }

    [Theory]
    [InlineData("use_qalora", "true", "'use_qalora' is set to true")]
    [InlineData("loftq_config", "{\"loftq_bits\": 4}", "'loftq_config' is set to")]
    [InlineData("modules_to_save", "[\"lm_head\"]", "modules_to_save names the LM head, which is tied to the input embedding")]  // GPT-2 ties it
    [InlineData("lora_bias", "true", "'lora_bias' is set to true")]
    [InlineData("init_lora_weights", "\"pissa\"", "init_lora_weights = \"pissa\" is not supported")]
    [InlineData("bias", "\"all\"", "bias is 'all'")]
    [InlineData("r", "0", "r must be a positive integer, got 0")]
    [InlineData("r", "2.5", "r must be an integer")]
    [InlineData("r", "1000000000", "file [4, 32], model expects [1000000000, 32] (r=1000000000, in=32)")]   // checked before allocating
    [InlineData("rank_pattern", "{\"(\": 2}", "is not a valid regular expression")]
    [InlineData("lora_dropout", "1.5", "lora_dropout must be in [0, 1)")]
    [InlineData("task_type", "\"SEQ_2_SEQ_LM\"", "task_type is SEQ_2_SEQ_LM, but the model is a causal LM")]
    [InlineData("task_type", "\"SEQ_CLS\"", "task_type 'SEQ_CLS' is not supported")]
    [InlineData("peft_type", "\"IA3\"", "peft_type 'IA3' is not supported yet")]
    [InlineData("target_modules", "[\"q_proj\"]", "target_modules [q_proj] match no linear module of the model; its linear modules are: c_attn, c_proj, c_fc")]
    [InlineData("target_modules", "\"(\"", "is not a valid regular expression")]
    public void ConfigsWePeftDslCannotHonourAreRefused(string field, string json, string message)
    {
        using var dir = CopyCase("gpt2.lora");
        Edit(dir, c => c[field] = JsonNode.Parse(json));
        AssertRefused(dir, message);
    }

    [Fact]
    public void TensorsThatDoNotFitAreListedWithTheFile()
    {
        using var dir = CopyCase("gpt2.lora");
        var path = dir.File("adapter_model.safetensors");
        var tensors = Fixtures.ReadAll(path);
        tensors.Remove("base_model.model.transformer.h.0.mlp.c_fc.lora_B.weight");
        tensors["base_model.model.transformer.h.1.attn.c_attn.lora_A.weight"] = zeros(8, 32);
        tensors["base_model.model.transformer.h.9.attn.c_attn.lora_A.weight"] = zeros(4, 32);
        SafetensorsWriter.Save(path, tensors);

        var e = AssertRefused(dir, path + ": the adapter does not fit this model");
        Assert.Contains("missing tensors (1):\n    base_model.model.transformer.h.0.mlp.c_fc.lora_B.weight", e.Message);
        Assert.Contains("base_model.model.transformer.h.9.attn.c_attn.lora_A.weight", e.Message);
        Assert.Contains("transformer.h.1.attn.c_attn.lora_A.weight: file [8, 32], model expects [4, 32] (r=4, in=32)", e.Message);
    }

    [Fact]
    public void AnAdapterForAnotherBaseIsRefused()
    {
        using var model = Base("llama");
        var e = Assert.Throws<PeftDslException>(() => model.Adapters.Load(Case("gpt2.lora")));
        Assert.Contains("target_modules [c_proj, c_attn, c_fc] match no linear module", e.Message);
        Assert.Contains("q_proj", e.Message);
        Assert.Empty(model.Adapters.Names);
    }

    [Fact]
    public void MissingFilesAndBrokenJsonAreNamed()
    {
        using var model = Base("gpt2");
        using var dir = CopyCase("gpt2.lora");
        Assert.Contains("adapter folder not found", Assert.Throws<PeftDslException>(() => model.Adapters.Load(dir.File("nope"))).Message);
        File.WriteAllText(dir.File("adapter_config.json"), "{ not json");
        Assert.Contains("adapter_config.json: not valid JSON", Assert.Throws<PeftDslException>(() => model.Adapters.Load(dir.Path)).Message);
        File.Copy(Path.Combine(Case("gpt2.lora"), "adapter_config.json"), dir.File("adapter_config.json"), overwrite: true);
        File.Move(dir.File("adapter_model.safetensors"), dir.File("adapter_model.bin"));
        Assert.Contains("pickle files can run code", Assert.Throws<PeftDslException>(() => model.Adapters.Load(dir.Path)).Message);
        File.WriteAllBytes(dir.File("adapter_model.safetensors"), new byte[100]);
        Assert.Contains("adapter_model.safetensors", Assert.ThrowsAny<PeftDslException>(() => model.Adapters.Load(dir.Path)).Message);
        Assert.Empty(model.Adapters.Names);
    }

    /// <summary>A save that fails midway leaves the existing folder as it was, and leaves no staging folder.</summary>
    [Fact]
    public void AFailedSaveLeavesTheOldFolderIntact()
    {
        using var parent = new TempDir();
        var folder = parent.File("adapter");
        Directory.CreateDirectory(folder);
        File.WriteAllText(Path.Combine(folder, "adapter_config.json"), "old");
        File.WriteAllText(Path.Combine(folder, "README.md"), "mine");

        Assert.Throws<InvalidOperationException>(() => AtomicFolder.Write(folder, staging =>
        {
            File.WriteAllText(Path.Combine(staging, "adapter_config.json"), "new");
            throw new InvalidOperationException("disk full");
        }));
        Assert.Equal("old", File.ReadAllText(Path.Combine(folder, "adapter_config.json")));
        Assert.Single(Directory.GetDirectories(parent.Path));

        AtomicFolder.Write(folder, staging => File.WriteAllText(Path.Combine(staging, "adapter_config.json"), "new"));
        Assert.Equal("new", File.ReadAllText(Path.Combine(folder, "adapter_config.json")));
        Assert.Equal("mine", File.ReadAllText(Path.Combine(folder, "README.md")));   // what the save does not write is kept
        Assert.Single(Directory.GetDirectories(parent.Path));
    }

    private static string[] Targets(LanguageModel model) =>
        model.Adapters.Linears().Where(l => l.Linear.Lora.Has("default")).Select(l => l.Path).ToArray();

    private static IEnumerable<string> Names(JsonNode? node) => node!.AsArray().Select(n => n!.GetValue<string>());

    internal static TempDir CopyCase(string name)
    {
        var dir = new TempDir();
        foreach (var f in Directory.GetFiles(Case(name))) File.Copy(f, dir.File(Path.GetFileName(f)));
        return dir;
    }

    internal static void Edit(TempDir dir, Action<JsonObject> edit)
    {
        var config = JsonNode.Parse(File.ReadAllText(dir.File("adapter_config.json")))!.AsObject();
        edit(config);
        File.WriteAllText(dir.File("adapter_config.json"), config.ToJsonString());
    }

    private static PeftDslException AssertRefused(TempDir dir, string message)
    {
        using var model = Base("gpt2");
        var e = Assert.Throws<PeftDslException>(() => model.Adapters.Load(dir.Path));
        Assert.Contains(message, e.Message);
        Assert.Empty(model.Adapters.Names);
        Assert.DoesNotContain(model.named_parameters(), p => p.name.Contains("lora"));
        return e;
    }
}
