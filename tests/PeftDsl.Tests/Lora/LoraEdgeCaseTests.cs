using System.Text.Json.Nodes;
using PeftDsl.Checkpoints;
using PeftDsl.Checkpoints.Safetensors;
using PeftDsl.Errors;
using PeftDsl.Models.Gpt2;
using PeftDsl.Peft;
using PeftDsl.Peft.Lora;
using Xunit;
using static TorchSharp.torch;

namespace PeftDsl.Tests.Lora;

/// <summary>What reviews and a new-user run found: modes, scopes, disabled routing, peft's config corner cases, files
/// a killed process leaves behind.</summary>
public sealed class LoraEdgeCaseTests
{
    private static string Case(string name) => Path.Combine(Fixtures.Directory, name);

    /// <summary>As transformers: a loaded model is in eval mode, so an adapter's dropout does not act by accident;
    /// generating from a training model leaves it training.</summary>
    [Fact]
    public void LoadedModelsInferUntilTrainedAndGenerationKeepsTheMode()
    {
        using var model = Gpt2LMHeadModel.FromPretrained(Fixtures.Base("gpt2"));
        Assert.False(model.training);
        model.Adapters.Add("default", LoraMathTests.Random("c_attn") with { Dropout = 0.5 });
        using var scope = NewDisposeScope();
        var (ids, mask) = LoraMathTests.Batch();
        LoraMathTests.AssertClose(model.Forward(ids, mask).Logits, model.Forward(ids, mask).Logits, 0);   // no dropout
        model.train();
        Generation.TextGenerator.Generate(model, [[5, 6]], new Generation.GenerationOptions { MaxNewTokens = 2 });
        Assert.True(model.training);
    }

    [Fact]
    public void AdaptersAddedInsideADisposeScopeOutliveIt()
    {
        using var model = Gpt2LMHeadModel.FromPretrained(Fixtures.Base("gpt2"));
        using (NewDisposeScope())
        {
            model.Adapters.Add("new", LoraMathTests.Random("c_fc"));
            model.Adapters.Load(Case("gpt2.lora"), "loaded");
        }
        Assert.All(model.SelectParameters(new ParameterQuery(PeftMethod.Lora)), p => Assert.False(p.Parameter.IsInvalid, p.Name));
        using var scope = NewDisposeScope();
        var (ids, mask) = LoraMathTests.Batch();
        Assert.Equal([3L, 6, 512], model.Forward(ids, mask, adapterNames: ["new", "loaded", "__base__"]).Logits.shape);
    }

    /// <summary>Disabled means the base model, even for a call that names adapters per row (peft checks it first too).</summary>
    [Fact]
    public void DisabledAdaptersIgnoreRowNames()
    {
        using var model = Gpt2LMHeadModel.FromPretrained(Fixtures.Base("gpt2"));
        model.Adapters.Add("a", LoraMathTests.Random("c_attn"));
        using var scope = NewDisposeScope();
        var (ids, mask) = LoraMathTests.Batch(rows: 2);
        model.Adapters.Disable();
        var plain = model.Forward(ids, mask).Logits;
        LoraMathTests.AssertClose(model.Forward(ids, mask, adapterNames: ["a", "a"]).Logits, plain, 0);
        Assert.Contains("does not exist", Assert.Throws<PeftDslException>(() => model.Forward(ids, mask, adapterNames: ["a", "x"])).Message);
    }

    /// <summary>The two mixed-batch paths (gather for inference, masked blocks for training) agree.</summary>
    [Fact]
    public void MixedBatchInferenceAndTrainingPathsAgree()
    {
        using var model = Gpt2LMHeadModel.FromPretrained(Fixtures.Base("gpt2"));
        LoraMathTests.AddTwo(model);
        using var scope = NewDisposeScope();
        var (ids, mask) = LoraMathTests.Batch();
        string[] rows = ["b", AdapterRouting.BaseRow, "a"];
        var training = model.Forward(ids, mask, adapterNames: rows).Logits;   // adapters trainable, grad on: masked blocks
        Assert.True(training.requires_grad);
        using (no_grad()) LoraMathTests.AssertClose(model.Forward(ids, mask, adapterNames: rows).Logits, training, 1e-5);
    }

    [Fact]
    public void TargetTyposInCodeAreRefusedButPeftFilesMayListAbsentModules()
    {
        using var model = Gpt2LMHeadModel.FromPretrained(Fixtures.Base("gpt2"));
        var e = Assert.Throws<PeftDslException>(() => model.Adapters.Add("x", new LoraConfig { TargetModules = ["c_attn", "c_atn"] }));
        Assert.Contains("target 'c_atn' matches no linear module", e.Message);
        Assert.Empty(model.Adapters.Names);

        using var dir = LoraFileTests.CopyCase("gpt2.lora");
        LoraFileTests.Edit(dir, c => c["target_modules"] = new JsonArray("c_attn", "c_proj", "c_fc", "q_proj"));   // a recipe's list
        model.Adapters.Load(dir.Path);
        Assert.Equal(["default"], model.Adapters.Names);
    }

    /// <summary>NeMo names in exclusions mean nothing to peft: the saved folder spells out the targets instead.</summary>
    [Fact]
    public void NemoExclusionsAreResolvedBeforeSaving()
    {
        using var model = Gpt2LMHeadModel.FromPretrained(Fixtures.Base("gpt2"));
        model.Adapters.Add("default", new LoraConfig { TargetModules = ["all"], ExcludeModules = ["mlp_fc2"] });
        using var dir = new TempDir();
        model.Adapters.Save(dir.Path);
        var config = JsonNode.Parse(File.ReadAllText(dir.File("adapter_config.json")))!;
        Assert.Null(config["exclude_modules"]);
        Assert.Equal(["attn.c_proj", "c_attn", "c_fc"], config["target_modules"]!.AsArray().Select(n => n!.GetValue<string>()).Order());
        using var again = Gpt2LMHeadModel.FromPretrained(Fixtures.Base("gpt2"));
        again.Adapters.Load(dir.Path);
        Assert.Equal(6, again.Adapters.Linears().Count(l => l.Linear.Lora.Has("default")));
    }

    /// <summary>The fixture's c_attn, c_proj and c_fc select 8 projections (c_proj in attention and MLP).</summary>
    [Theory]
    [InlineData("layers_to_transform", "[]", 8)]            // peft: an empty list is no filter
    [InlineData("layers_pattern", "[]", 8)]
    [InlineData("init_lora_weights", "\"Gaussian\"", 8)]
    [InlineData("target_modules", "\"all-linear\"", 8)]     // peft's string shorthand
    [InlineData("runtime_config", "{\"ephemeral_gpu_offload\": true}", 8)]   // runtime only, dropped as peft drops it
    [InlineData("target_parameters", "[]", 8)]
    public void PeftsCornerCasesReadAsPeftReadsThem(string field, string json, int sites)
    {
        using var dir = LoraFileTests.CopyCase("gpt2.lora");
        LoraFileTests.Edit(dir, c => c[field] = JsonNode.Parse(json));
        using var model = Gpt2LMHeadModel.FromPretrained(Fixtures.Base("gpt2"));
        model.Adapters.Load(dir.Path);
        Assert.Equal(sites, model.Adapters.Linears().Count(l => l.Linear.Lora.Has("default")));
    }

    [Fact]
    public void ARegexTargetWithLayerSelectionIsRefusedAsPeftRefusesIt()
    {
        var e = Assert.Throws<PeftDslException>(() => new LoraConfig { TargetPattern = ".*c_attn", LayersToTransform = [0] }.Validate());
        Assert.Contains("layers_to_transform cannot be used with a regex target_modules", e.Message);
    }

    /// <summary>With rsLoRA the combined adapter still has scaling 1, so `cat` stays exact.</summary>
    [Fact]
    public void WeightedCatIsExactForRsLoraAdapters()
    {
        using var model = Gpt2LMHeadModel.FromPretrained(Fixtures.Base("gpt2"));
        model.Adapters.Add("a", LoraMathTests.Random("c_attn") with { UseRsLora = true });
        model.Adapters.Add("b", LoraMathTests.Random("c_attn") with { UseRsLora = true, R = 2 });
        model.Adapters.AddWeighted(["a", "b"], [1, 0.5], "mix", "cat");
        Assert.False(model.Adapters["mix"].UseRsLora);
        using var scope = NewDisposeScope();
        var lora = model.transformer.h[1].attn.c_attn.Lora;
        LoraMathTests.AssertClose(lora.DeltaWeight("mix"), lora.DeltaWeight("a") + 0.5 * lora.DeltaWeight("b"), 1e-6);
    }

    /// <summary>A write killed midway leaves hidden leftovers; the next write removes an incomplete one and puts a
    /// complete previous folder back where it belongs.</summary>
    [Fact]
    public void LeftoversOfKilledWritesAreCleanedAndRecovered()
    {
        using var parent = new TempDir();
        var dead = DeadPid();
        Directory.CreateDirectory(parent.File($".out.tmp-{dead}-0123456789"));
        Directory.CreateDirectory(parent.File($".kept.old-{dead}-0123456789"));
        File.WriteAllText(Path.Combine(parent.File($".kept.old-{dead}-0123456789"), "README.md"), "mine");

        AtomicFolder.Write(parent.File("out"), s => File.WriteAllText(Path.Combine(s, "a.txt"), "new"));
        AtomicFolder.Write(parent.File("kept"), s => File.WriteAllText(Path.Combine(s, "a.txt"), "new"));
        Assert.Equal(["kept", "out"], Directory.GetDirectories(parent.Path).Select(Path.GetFileName).Order());
        Assert.Equal("mine", File.ReadAllText(Path.Combine(parent.File("kept"), "README.md")));   // recovered, then carried over
    }

    [Fact]
    public void BytesAfterTheLastTensorAreRefused()
    {
        using var dir = LoraFileTests.CopyCase("gpt2.lora");
        using (var stream = new FileStream(dir.File("adapter_model.safetensors"), FileMode.Append)) stream.Write(new byte[16]);
        using var model = Gpt2LMHeadModel.FromPretrained(Fixtures.Base("gpt2"));
        var e = Assert.ThrowsAny<PeftDslException>(() => model.Adapters.Load(dir.Path));
        Assert.Contains("16 bytes follow the last tensor's data", e.Message);
    }

    private static int DeadPid()
    {
        for (var pid = 4_000_000; ; pid--)
        {
            try { System.Diagnostics.Process.GetProcessById(pid).Dispose(); }
            catch (ArgumentException) { return pid; }
        }
    }
}
