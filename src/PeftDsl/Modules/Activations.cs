using PeftDsl.Errors;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftDsl.Modules;

/// <summary>Activations by their Hugging Face names (<c>hidden_act</c>, <c>activation_function</c>).</summary>
public static class Activations
{
    /// <summary>The names accepted; the generator checks literal activations against the same list.</summary>
    public static readonly IReadOnlyList<string> Names =
        ["gelu", "gelu_new", "gelu_pytorch_tanh", "gelu_fast", "relu", "silu", "swish"];

    /// <summary>The activation function for a Hugging Face name; the <c>gelu_new</c> family is the tanh approximation.</summary>
    /// <param name="name">One of <see cref="Names"/>.</param>
    /// <param name="source">Where the name came from (module and config key), for the error message.</param>
    /// <exception cref="ConfigException">The name is unknown.</exception>
    public static Func<Tensor, Tensor> Resolve(string name, string source) => name switch
    {
        "gelu" => x => nn.functional.gelu(x),
        // gelu_new (GPT-2), gelu_pytorch_tanh (Gemma) and gelu_fast are the same tanh approximation.
        "gelu_new" or "gelu_pytorch_tanh" or "gelu_fast" => x => nn.functional.gelu(x, TorchSharp.Modules.GELU.Approximate.tanh),
        "relu" => x => nn.functional.relu(x),
        "silu" or "swish" => x => nn.functional.silu(x),
        _ => throw new ConfigException($"{source}: unknown activation '{name}' (supported: {string.Join(", ", Names)})"),
    };
}
