using PeftDsl.Checkpoints;
using TinyQwen;
using Xunit;

namespace PeftDsl.Tests;

/// <summary>The consumer example: its own architecture variant, compiled by the generator as an analyzer.</summary>
public sealed class ExampleTests
{
    [Fact]
    public void ExampleRunsAForwardPassWithALoss()
    {
        var output = new StringWriter();
        Assert.Equal(0, TinyQwen.Program.Run(output));
        var lines = output.ToString().Split('\n');
        Assert.StartsWith("logits [2, 12, 1000] loss ", lines[0]);
        Assert.Contains("attention_qkv selects 12 tensors", output.ToString());
    }

    [Fact]
    public void ExampleVariantHasBiasOnQueryKeyValueButNotOutput()
    {
        var keys = TinyQwenForCausalLM.CheckpointKeys(new TinyQwenConfig()).Select(k => k.Key).ToHashSet();
        Assert.Contains("model.layers.0.self_attn.k_proj.bias", keys);
        Assert.DoesNotContain("model.layers.0.self_attn.o_proj.bias", keys);
        Assert.DoesNotContain("lm_head.weight", keys); // tied
        Assert.Contains(new CheckpointKey("model.layers.1.self_attn.v_proj.weight", [16, 64]),
            TinyQwenForCausalLM.CheckpointKeys(new TinyQwenConfig()));
    }
}
