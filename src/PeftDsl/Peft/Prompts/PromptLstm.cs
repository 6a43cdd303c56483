using PeftDsl.Modules;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftDsl.Peft.Prompts;

/// <summary>
/// peft's <c>lstm_head</c>: a bidirectional LSTM of <c>layers</c> layers over the virtual tokens, written from matmuls
/// and gates instead of <c>nn.LSTM</c>.
/// <para>
/// Why not <c>nn.LSTM</c>: libtorch 2.10 hands it to oneDNN 3.7.1, whose AVX-512 kernel (<c>brgemm:avx512_core</c>,
/// <c>forward_inference</c>, that is every call without gradients) returns wrong hidden states when the width modulo
/// 32 is 1 to 16 (measured: errors of 0.1 to 0.4 at width 16, exact at 32 and 64), while the same call with gradients,
/// or on an AVX2 CPU, is right. Evaluation and generation would then read other prompts than training did, on some
/// CPUs only (docs/cpu-determinism.md). The recurrence runs over a handful of virtual tokens, so plain ops cost little.
/// </para>
/// Parameter names, shapes and initialisation (uniform ±1/√width, in registration order) are <c>nn.LSTM</c>'s, so
/// checkpoints written with it load unchanged. Gates are PyTorch's order: input, forget, cell, output.
/// </summary>
public sealed class PromptLstm : nn.Module<Tensor, Tensor>
{
    private readonly long width;
    private readonly int layers;
    private readonly double dropout;
    // Looked up by name at each call, not kept: moving the module (to()) replaces its parameter objects.
    private readonly string[] weightIh, weightHh, biasIh, biasHh;   // index 2·layer + direction (1 = reverse)

    /// <param name="input">The width of each virtual token's input row.</param>
    /// <param name="width">The hidden width of each direction; the output rows are twice as wide.</param>
    /// <param name="layers">Stacked layers; each reads the previous one's (T, 2 × width) output.</param>
    /// <param name="dropout">Dropout on every layer's output but the last, in training mode (<c>nn.LSTM</c>'s).</param>
    public PromptLstm(long input, long width, int layers, double dropout) : base(nameof(PromptLstm))
    {
        this.width = width;
        this.layers = layers;
        this.dropout = dropout;
        int n = 2 * layers;
        weightIh = new string[n];
        weightHh = new string[n];
        biasIh = new string[n];
        biasHh = new string[n];
        double bound = 1.0 / Math.Sqrt(width);
        using var noGrad = no_grad();
        for (int layer = 0; layer < layers; layer++)
        {
            long layerInput = layer == 0 ? input : 2 * width;
            for (int direction = 0; direction < 2; direction++)
            {
                int i = 2 * layer + direction;
                string suffix = $"_l{layer}" + (direction == 1 ? "_reverse" : "");
                weightIh[i] = Register("weight_ih" + suffix, empty(4 * width, layerInput), bound);
                weightHh[i] = Register("weight_hh" + suffix, empty(4 * width, width), bound);
                biasIh[i] = Register("bias_ih" + suffix, empty(4 * width), bound);
                biasHh[i] = Register("bias_hh" + suffix, empty(4 * width), bound);
            }
        }
    }

    /// <summary>Empty on purpose: the parameters are registered by name in the constructor, in <c>nn.LSTM</c>'s order.</summary>
    protected override void RegisterComponents()
    {
    }

    private string Register(string name, Tensor value, double bound)
    {
        register_parameter(name, OwnedParameter.Of(value.uniform_(-bound, bound)));
        return name;
    }

    private Parameter P(string name) => get_parameter(name)!;

    /// <summary>(T, input) → (T, 2 × width): each position's forward state, then its reverse state.</summary>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        for (int layer = 0; layer < layers; layer++)
        {
            x = Layer(x, 2 * layer);
            if (layer < layers - 1 && dropout > 0) x = nn.functional.dropout(x, dropout, training);
        }
        return x.MoveToOuterDisposeScope();
    }

    /// <summary>Both directions of one layer, stepped together: direction 1 reads the sequence backwards.</summary>
    private Tensor Layer(Tensor x, int first)
    {
        long t = x.shape[0], h = width;
        // Input part of every gate at every position, both directions in one matmul: (T, 8h) → (2, T, 4h).
        var inputGates = nn.functional.linear(x,
            cat([P(weightIh[first]), P(weightIh[first + 1])], 0),
            cat([P(biasIh[first]) + P(biasHh[first]), P(biasIh[first + 1]) + P(biasHh[first + 1])], 0));
        var both = stack([inputGates.narrow(1, 0, 4 * h), inputGates.narrow(1, 4 * h, 4 * h).flip(0)], 0);
        var recurrent = stack([P(weightHh[first]).t(), P(weightHh[first + 1]).t()], 0);   // (2, h, 4h)
        var state = zeros(2, 1, h, x.dtype, x.device);
        var cell = zeros(2, 1, h, x.dtype, x.device);
        var outputs = new Tensor[t];
        for (long step = 0; step < t; step++)
        {
            // (TorchSharp 0.107's baddbmm passes its arguments to libtorch in another order, so the sum is spelled out.)
            var gates = both.narrow(1, step, 1) + state.bmm(recurrent);   // (2, 1, 4h)
            var g = gates.chunk(4, -1);
            cell = g[1].sigmoid() * cell + g[0].sigmoid() * g[2].tanh();
            state = g[3].sigmoid() * cell.tanh();
            outputs[step] = state;
        }
        var states = cat(outputs, 1);                                           // (2, T, h)
        return cat([states[0], states[1].flip(0)], -1);                         // (T, 2h)
    }
}
