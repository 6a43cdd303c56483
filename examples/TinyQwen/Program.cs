using PeftDsl.Peft;
using static TorchSharp.torch;

namespace TinyQwen;

public static class Program
{
    public static int Main() => Run(Console.Out);

    /// <summary>Builds the model from its embedded defaults, runs a forward pass with a loss, and lists its PEFT sites.</summary>
    public static int Run(TextWriter output)
    {
        manual_seed(0);
        var config = new TinyQwenConfig();
        using var model = new TinyQwenForCausalLM(config);
        using var scope = NewDisposeScope();
        var ids = randint(0, config.VocabSize, [2, 12], dtype: ScalarType.Int64);
        using var result = model.Forward(ids, labels: ids);
        output.WriteLine($"logits [{string.Join(", ", result.Logits.shape)}] loss {result.Loss!.item<float>():F3}");
        output.WriteLine($"parameters {model.parameters().Sum(p => p.NumberOfElements):N0} in {TinyQwenForCausalLM.CheckpointKeys(config).Count} tensors");
        var qkv = model.SelectParameters(new ParameterQuery(Sites: [SiteNames.AttentionQkv]));
        output.WriteLine($"attention_qkv selects {qkv.Count} tensors, e.g. {qkv[0].Name}");
        return 0;
    }
}
