using System.Text.Json.Nodes;
using PeftDsl.Checkpoints.Safetensors;
using PeftDsl.Config;
using PeftDsl.Errors;
using PeftDsl.Models.Llama;
using PeftDsl.Models.Qwen2;
using PeftDsl.Models.T5;
using PeftDsl.Peft;
using PeftDsl.Peft.Lora;
using PeftDsl.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using Xunit;
using static TorchSharp.torch;

namespace PeftDsl.Tests.Lora;

/// <summary>peft's trainable tokens (LoRA's <c>trainable_token_indices</c>): chosen rows of the input embedding, and of
/// a head tied to it, replaced by trainable rows that start as copies; saved once, under peft's key, and merged into the
/// table.</summary>
public sealed class TrainableTokensTests
{
    private static readonly long[] Tokens = [5, 9];
    private static readonly Tensor Ids = tensor(new long[] { 3, 5, 7, 9, 11, 5 }).unsqueeze(0);

    /// <summary>A small Qwen2 with its head tied to the embedding (tie_word_embeddings true).</summary>
    private static Qwen2ForCausalLM Tied()
    {
        manual_seed(4);
        return new Qwen2ForCausalLM(Qwen2Config.FromJson(ConfigJson.Parse("""
            {"vocab_size": 32, "hidden_size": 16, "intermediate_size": 24, "num_hidden_layers": 1, "num_attention_heads": 2,
             "num_key_value_heads": 1, "tie_word_embeddings": true}
            """, "config.json")));
    }

    private static void AssertClose(Tensor actual, Tensor expected, double tolerance = 1e-5)
    {
        var delta = (actual - expected).abs().max().item<float>();
        Assert.True(delta <= tolerance, $"max |Δ| = {delta}");
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void RowsReplaceTheTokensEmbeddingAndTiedHeadAndOnlyTheyTrain(bool tied)
    {
        using CausalLanguageModel model = tied ? Tied() : LlamaForCausalLM.FromPretrained(Fixtures.Base("llama"));
        using var _ = no_grad();
        var baseLogits = model.Logits(Ids);
        model.Adapters.Add("a", new LoraConfig { R = 2, TargetModules = ["q_proj"], TrainableTokenIndices = Tokens });
        AssertClose(model.Logits(Ids), baseLogits, 1e-6);   // rows start as copies, B starts at zero (a tied head computes their columns apart)

        var table = model.named_parameters().First(p => p.name == "model.embed_tokens.weight").parameter;
        var rows = model.named_parameters().First(p => p.name == "model.embed_tokens.token_adapter.trainable_tokens_delta.a").parameter;
        Assert.True(rows.requires_grad);
        Assert.False(table.requires_grad);
        rows.copy_(randn(rows.shape));
        var withRows = model.Logits(Ids);

        // The formula: the same model with those rows written into its table (a tied head reads the same table).
        var saved = table.index_select(0, tensor(Tokens)).clone();
        model.Adapters.Disable();
        table.index_copy_(0, tensor(Tokens), rows);
        AssertClose(withRows, model.Logits(Ids));
        table.index_copy_(0, tensor(Tokens), saved);
        model.Adapters.Enable();
        if (!tied) Assert.True((withRows - baseLogits).abs().max().item<float>() > 1e-4);

        // Merge writes them into the table; unmerge restores it exactly.
        model.Adapters.Merge();
        AssertClose(model.Logits(Ids), withRows);
        model.Adapters.Unmerge();
        Assert.True(table.index_select(0, tensor(Tokens)).allclose(saved, 0, 0));
    }

    [Fact]
    public void GradientsReachOnlyTheChosenRows()
    {
        using var model = Tied();
        model.Adapters.Add("a", new LoraConfig { R = 2, TargetModules = ["q_proj"], TrainableTokenIndices = Tokens });
        var loss = model.Forward(Ids, labels: Ids).Loss!;
        loss.backward();
        var rows = model.named_parameters().First(p => p.name.EndsWith("trainable_tokens_delta.a")).parameter;
        Assert.Equal([2L, 16], rows.grad!.shape);
        Assert.True(rows.grad.abs().sum().item<float>() > 0);
        Assert.Contains(model.TrainableParameters(), p => p.Name.EndsWith("trainable_tokens_delta.a") && p.Adapter == "a" && p.Method == PeftMethod.Lora);
    }

    [Fact]
    public void SavedAsPeftSavesThemAndLoadedBack()
    {
        using var dir = new TempDir();
        using var model = Tied();
        model.Adapters.Add("default", new LoraConfig { R = 2, TargetModules = ["q_proj"], TrainableTokenIndices = Tokens });
        using (no_grad()) model.named_parameters().First(p => p.name.EndsWith("trainable_tokens_delta.default")).parameter.copy_(randn(2, 16));
        var logits = model.Logits(Ids);
        model.Adapters.Save(dir.Path);
        using (var reader = SafetensorsReader.Open(dir.File("adapter_model.safetensors")))
            Assert.Equal([2L, 16], reader.Entries["base_model.model.model.embed_tokens.token_adapter.trainable_tokens_delta"].Shape);
        var config = JsonNode.Parse(File.ReadAllText(dir.File("adapter_config.json")))!;
        Assert.Equal("[5,9]", config["trainable_token_indices"]!.ToJsonString());

        using var other = Tied();
        other.Adapters.Load(dir.Path);
        AssertClose(other.Logits(Ids), logits);
    }

    [Fact]
    public void WhatCannotBeComputedIsRefusedByName()
    {
        using var model = Tied();
        var e = Assert.Throws<PeftDslException>(() => model.Adapters.Add("a", new LoraConfig { R = 2, TargetModules = ["q_proj"], TrainableTokenIndices = [40] }));
        Assert.Equal("LoraConfig: trainable_token_indices holds 40, outside the vocabulary of 32", e.Message);
        Assert.Empty(model.Adapters.Names);   // nothing half-added
        e = Assert.Throws<PeftDslException>(() => model.Adapters.Add("a", new LoraConfig { R = 2, TargetModules = ["q_proj"], TrainableTokenIndices = [3, 3] }));
        Assert.Contains("names a token twice", e.Message);
        var two = JsonNode.Parse("""{"peft_type": "LORA", "r": 2, "target_modules": ["q_proj"], "trainable_token_indices": {"embed_tokens": [1], "lm_head": [1]}}""")!.AsObject();
        e = Assert.Throws<PeftDslException>(() => LoraConfigJson.Parse(two, "adapter_config.json"));
        Assert.Contains("trainable_token_indices names 2 modules (embed_tokens, lm_head)", e.Message);

        model.Adapters.Add("a", new LoraConfig { R = 2, TargetModules = ["q_proj"], TrainableTokenIndices = Tokens });
        model.Adapters.Add("b", new LoraConfig { R = 2, TargetModules = ["q_proj"] });
        e = Assert.Throws<PeftDslException>(() => model.Forward(Ids.repeat(2, 1), adapterNames: ["a", "b"]));
        Assert.Contains("adapter_names cannot be used with trainable tokens", e.Message);

        using var t5 = T5ForConditionalGeneration.FromPretrained(Fixtures.Base("t5"));
        e = Assert.Throws<PeftDslException>(() => t5.Adapters.Add("a", new LoraConfig { R = 2, TargetModules = ["q"], TrainableTokenIndices = [1] }));
        Assert.Contains("trainable_token_indices is supported on decoder-only models", e.Message);
    }

    [Fact]
    public void TrainTakesTrainableTokensAndModulesToSaveFromTheCommandLine()
    {
        using var dir = Training.TrainCliTests.Workspace();
        var (code, _, stderr) = ParityTests.Peft("train", "--model", Fixtures.Base("llama"), "--tokenizer", dir.File("tok"), "--data", dir.File("train.jsonl"),
            "--out", dir.File("run"), "--steps", "2", "--batch", "4", "--trainable-tokens", "3,4");
        Assert.True(code == 0, stderr);
        using (var reader = SafetensorsReader.Open(dir.File("run/adapter_model.safetensors")))
            Assert.Contains("base_model.model.model.embed_tokens.token_adapter.trainable_tokens_delta", reader.Entries.Keys);
        // A resume trains the rows it started with, or is refused.
        (code, _, stderr) = ParityTests.Peft("train", "--model", Fixtures.Base("llama"), "--tokenizer", dir.File("tok"), "--data", dir.File("train.jsonl"),
            "--out", dir.File("run"), "--steps", "2", "--batch", "4", "--trainable-tokens", "3 5", "--resume");
        Assert.Equal(2, code);
        Assert.Contains("--trainable-tokens 3,4 → 3,5", stderr);
        (code, _, stderr) = ParityTests.Peft("train", "--model", Fixtures.Base("llama"), "--tokenizer", dir.File("tok"), "--data", dir.File("train.jsonl"),
            "--out", dir.File("whole"), "--steps", "1", "--batch", "4", "--modules-to-save", "lm_head");
        Assert.True(code == 0, stderr);
        using (var reader = SafetensorsReader.Open(dir.File("whole/adapter_model.safetensors")))
            Assert.Contains("base_model.model.lm_head.weight", reader.Entries.Keys);
        (code, _, stderr) = ParityTests.Peft("train", "--model", Fixtures.Base("llama"), "--tokenizer", dir.File("tok"), "--data", dir.File("train.jsonl"),
            "--out", dir.File("bad"), "--steps", "2", "--trainable-tokens", "3,x");
        Assert.Equal(2, code);
        Assert.Contains("--trainable-tokens: 'x' is not a token id", stderr);
    }
}

/// <summary>peft's <c>modules_to_save</c> for the input embedding and an untied LM head: a whole trainable copy per
/// adapter, used while it is active, saved under the module's own key, and kept by merge-and-unload.</summary>
public sealed class ModulesToSaveTests
{
    private static readonly Tensor Ids = tensor(new long[] { 3, 5, 7, 9, 11, 5 }).unsqueeze(0);

    private static Parameter Named(nn.Module model, string name) => model.named_parameters().First(p => p.name == name).parameter;

    [Fact]
    public void CopiesReplaceTheEmbeddingAndHeadTrainAndSaveAsPeftDoes()
    {
        using var dir = new TempDir();
        using var model = LlamaForCausalLM.FromPretrained(Fixtures.Base("llama"));
        var baseLogits = model.Logits(Ids).detach();
        model.Adapters.Add("default", new LoraConfig { R = 2, TargetModules = ["q_proj"], ModulesToSave = ["embed_tokens", "lm_head"] });
        var embedding = Named(model, "model.embed_tokens.modules_to_save.default.weight");
        var head = Named(model, "lm_head.modules_to_save.default.weight");
        Assert.True(embedding.requires_grad && head.requires_grad);
        Assert.False(Named(model, "model.embed_tokens.weight").requires_grad);
        using (no_grad()) Assert.True(model.Logits(Ids).allclose(baseLogits, 0, 0));

        model.Forward(Ids, labels: Ids).Loss!.backward();
        Assert.True(embedding.grad!.abs().sum().item<float>() > 0 && head.grad!.abs().sum().item<float>() > 0);
        using (no_grad())
        {
            embedding.add_(randn(embedding.shape) * 0.1);
            head.add_(randn(head.shape) * 0.1);
        }
        using var _ = no_grad();
        var trained = model.Logits(Ids);
        Assert.True((trained - baseLogits).abs().max().item<float>() > 1e-3);

        model.Adapters.Save(dir.Path);
        using (var reader = SafetensorsReader.Open(dir.File("adapter_model.safetensors")))
        {
            Assert.Contains("base_model.model.model.embed_tokens.weight", reader.Entries.Keys);
            Assert.Contains("base_model.model.lm_head.weight", reader.Entries.Keys);
        }
        Assert.Equal("""["embed_tokens","lm_head"]""", JsonNode.Parse(File.ReadAllText(dir.File("adapter_config.json")))!["modules_to_save"]!.ToJsonString());
        using var loaded = LlamaForCausalLM.FromPretrained(Fixtures.Base("llama"));
        loaded.Adapters.Load(dir.Path);
        Assert.True(loaded.Logits(Ids).allclose(trained, 1e-5, 1e-6));

        // Merge-and-unload keeps the trained copies as the model's weights (and frees the copies).
        var trainedTable = embedding.detach().clone();
        model.Adapters.MergeAndUnload();
        Assert.True(Named(model, "model.embed_tokens.weight").allclose(trainedTable, 0, 0));
        Assert.DoesNotContain(model.named_parameters(), p => p.name.Contains("modules_to_save"));
        Assert.True(model.Logits(Ids).allclose(trained, 1e-5, 1e-5));
    }

    [Fact]
    public void WhatWouldUntieOrIsNotTheEmbeddingOrHeadIsRefused()
    {
        manual_seed(4);
        using var tied = new Qwen2ForCausalLM(Qwen2Config.FromJson(ConfigJson.Parse("""
            {"vocab_size": 32, "hidden_size": 16, "intermediate_size": 24, "num_hidden_layers": 1, "num_attention_heads": 2, "tie_word_embeddings": true}
            """, "config.json")));
        var e = Assert.Throws<PeftDslException>(() => tied.Adapters.Add("a", new LoraConfig { R = 2, TargetModules = ["q_proj"], ModulesToSave = ["embed_tokens"] }));
        Assert.Contains("which the LM head is tied to; a trained copy would untie them", e.Message);
        e = Assert.Throws<PeftDslException>(() => tied.Adapters.Add("a", new LoraConfig { R = 2, TargetModules = ["q_proj"], ModulesToSave = ["lm_head"] }));
        Assert.Contains("the LM head, which is tied to the input embedding", e.Message);
        Assert.Empty(tied.Adapters.Names);
        Assert.DoesNotContain(tied.named_parameters(), p => p.name.Contains("modules_to_save"));

        using var model = LlamaForCausalLM.FromPretrained(Fixtures.Base("llama"));
        e = Assert.Throws<PeftDslException>(() => model.Adapters.Add("a", new LoraConfig { R = 2, TargetModules = ["q_proj"], ModulesToSave = ["score"] }));
        Assert.Equal("LoraConfig: modules_to_save names 'score'; only the input embedding and an untied LM head can be saved whole (model.embed_tokens, lm_head)", e.Message);
        e = Assert.Throws<PeftDslException>(() => model.Adapters.Add("a", new LoraConfig { R = 2, TargetModules = ["q_proj"], ModulesToSave = ["embed_tokens"], TrainableTokenIndices = [3] }));
        Assert.Contains("trained whole or by rows, not both", e.Message);
    }
}
