using PeftDsl.Errors;
using PeftDsl.Models.Gpt2;
using PeftDsl.Models.T5;
using PeftDsl.Peft.Prompts;
using Xunit;
using static TorchSharp.torch;

namespace PeftDsl.Tests.Prompts;

/// <summary>A batch may mix prompt-tuning and P-tuning tasks, or prefix tasks, but not a prefix with the others: that is
/// refused in one line naming the tasks, on every path (T5's encoder used to skip the prompt rows of such a batch).</summary>
[Collection(GlobalRandomness.Name)]
public sealed class MixedPromptKindsTests
{
    private const string Refusal = "one batch cannot mix prefix-tuning tasks (x) with prompt-tuning or P-tuning tasks (p)";

    [Fact]
    public void APrefixTaskAndAPromptTaskInOneBatchAreRefused()
    {
        using var gpt2 = Gpt2LMHeadModel.FromPretrained(Fixtures.Base("gpt2"));
        gpt2.Prompts.Add("p", new PromptConfig { Method = PromptMethod.PromptTuning, NumVirtualTokens = 3 });
        gpt2.Prompts.Add("x", new PromptConfig { Method = PromptMethod.PrefixTuning, NumVirtualTokens = 2 });
        using var scope = NewDisposeScope();
        var ids = tensor(new long[,] { { 5, 6, 7 }, { 8, 9, 10 } });
        var e = Assert.Throws<PeftDslException>(() => gpt2.Forward(ids, adapterNames: ["p", "x"]));
        Assert.StartsWith(Refusal, e.Message);

        using var t5 = T5ForConditionalGeneration.FromPretrained(Fixtures.Base("t5"));
        t5.Prompts.Add("p", new PromptConfig { Method = PromptMethod.PromptTuning, NumVirtualTokens = 3 });
        t5.Prompts.Add("x", new PromptConfig { Method = PromptMethod.PrefixTuning, NumVirtualTokens = 2 });
        e = Assert.Throws<PeftDslException>(() => t5.Encode(ids, null, t5.Route(["p", "x"], ids)));
        Assert.StartsWith(Refusal, e.Message);
        e = Assert.Throws<PeftDslException>(() => t5.Forward(ids, null, ids.narrow(1, 0, 2), adapterNames: ["x", "p"]));
        Assert.StartsWith(Refusal, e.Message);
    }
}
