using MyModel;
using PeftDsl.Errors;
using PeftDsl.Peft;
using PeftDsl.Runtime;
using static TorchSharp.torch;

// Builds the declared model from config.json (or the path given), runs a forward pass with a loss on random tokens,
// and lists the PEFT sites the declaration gives it: where LoRA, IA3, adapters and virtual prompts can attach.
try
{
    var path = args.Length > 0 ? args[0] : Path.Combine(AppContext.BaseDirectory, "config.json");
    var config = DecoderConfig.Load(path);
    // Before the first TorchSharp call: a missing or too old libtorch is then one line saying what to install.
    TorchRuntime.EnsureNativeLoaded();
    manual_seed(0);
    using var model = new DecoderForCausalLM(config);
    using var scope = NewDisposeScope();
    var ids = randint(0, config.VocabSize, [2, 12], dtype: ScalarType.Int64);
    using var result = model.Forward(ids, labels: ids);
    Console.WriteLine($"{path}: {model.parameters().Sum(p => p.NumberOfElements):N0} parameters");
    Console.WriteLine($"forward: logits [{string.Join(", ", result.Logits.shape)}], loss {result.Loss!.item<float>():F3}");
    var sites = model.Sites();
    Console.WriteLine($"{sites.Count} PEFT sites:");
    foreach (var group in sites.GroupBy(s => (s.Kind, s.Name)))
        Console.WriteLine($"  {group.Key.Kind,-14} {group.Key.Name,-22} {group.Count()} × e.g. {group.First().ModulePath}");
    return 0;
}
catch (PeftDslException e)
{
    // A bad config.json (a missing key, a wrong type), a shape or a missing libtorch is one line naming the problem.
    Console.Error.WriteLine($"error: {e.Message}");
    return 2;
}
catch (Exception e) when (e is System.Runtime.InteropServices.ExternalException or OutOfMemoryException)
{
    // libtorch could not allocate what config.json describes (a vocab_size or hidden_size far too large).
    Console.Error.WriteLine($"error: the model config.json describes does not fit in memory ({e.Message.Split('\n')[0]})");
    return 2;
}
