using PeftDsl.Errors;
using PeftDsl.Peft.Lora;
using PeftDsl.Tests.Training;
using Xunit;

namespace PeftDsl.Tests.Lora;

/// <summary>Targets are read one way (<see cref="LoraTargets.Parse"/>) by train, inspect and bench: a list of names
/// (commas or spaces; exact paths, dotted suffixes, NeMo names) or one regular expression. The same spellings select the
/// same modules in every command (bench used to take one name only).</summary>
public sealed class TargetTextTests
{
    [Fact]
    public void ListsAndOneRegexAreRead()
    {
        Assert.Equal(["c_attn", "attn.c_proj"], LoraTargets.Parse(["c_attn, attn.c_proj"], "--targets").Modules);
        Assert.Equal(["c_attn", "attn.c_proj"], LoraTargets.Parse(["c_attn", "attn.c_proj", "c_attn"], "--targets").Modules);
        Assert.Equal(@".*\.(q|v)_proj{1,2}", LoraTargets.Parse([@"re:.*\.(q|v)_proj{1,2}"], "--targets").Pattern);
        Assert.Equal("--targets names no module; leave it out for the model's default targets",
            Assert.Throws<PeftDslException>(() => LoraTargets.Parse([" , "], "--targets")).Message);
        Assert.StartsWith("--lora-targets: a regular expression (re:x) is the whole target",
            Assert.Throws<PeftDslException>(() => LoraTargets.Parse(["c_attn", "re:x"], "--lora-targets")).Message);
        Assert.StartsWith("'(' is not a valid regular expression", Assert.Throws<PeftDslException>(() => LoraTargets.Parse(["re:("], "--targets")).Message);
    }

    /// <summary>q and v of the Llama fixture (hidden 32, kv width 16, 2 layers, r 4): (4·32 + 32·4) + (4·32 + 16·4) per
    /// layer, 896 in all, whichever way they are written and whichever command reads them.</summary>
    [Theory]
    [InlineData("q_proj,v_proj")]
    [InlineData("q_proj v_proj")]
    [InlineData("self_attn.q_proj, self_attn.v_proj")]
    [InlineData(@"re:.*\.self_attn\.(q|v)_proj")]
    public void EveryCommandReadsTheSameTargets(string targets)
    {
        const string Count = "896";
        var (code, stdout, stderr) = ParityTests.Peft("inspect", "--model", Fixtures.Base("llama"), "--targets", targets, "--r", "4");
        Assert.True(code == 0, stderr);
        Assert.StartsWith($"trainable params: {Count} ||", stdout.TrimEnd().Split('\n')[^1]);
        (code, stdout, stderr) = ParityTests.Peft("bench", "--model", Fixtures.Base("llama"), "--lora-r", "4", "--lora-targets", targets,
            "--batch", "1", "--length", "8", "--steps", "1", "--new-tokens", "0");
        Assert.True(code == 0, stderr);
        Assert.Contains($", {Count} trainable parameters", stdout);
        using var dir = TrainCliTests.Workspace();
        (code, stdout, stderr) = ParityTests.Peft("train", "--model", Fixtures.Base("llama"), "--tokenizer", dir.File("tok"), "--data", dir.File("train.jsonl"),
            "--out", dir.File("run"), "--steps", "1", "--r", "4", "--targets", targets);
        Assert.True(code == 0, stderr);
        Assert.Contains($": {Count} trainable of ", stdout);
    }
}
