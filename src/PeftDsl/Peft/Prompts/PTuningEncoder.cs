using TorchSharp;
using static TorchSharp.torch;

namespace PeftDsl.Peft.Prompts;

/// <summary>
/// P-tuning: an input table (<c>embedding</c>, N(0, 1)) fed through an encoder. peft's MLP is
/// <c>mlp_head</c> = Linear(d, h), ReLU, Linear(h, h), ReLU, Linear(h, d); peft's LSTM is <c>lstm_head</c>, a
/// bidirectional LSTM of width h (<see cref="PromptLstm"/>), then <c>mlp_head</c> = Linear(2h, 2h), ReLU, Linear(2h, d); NeMo's MLP is
/// <c>mlp_head</c> = Linear(d, h), GeLU, Linear(h, d). The encoder reads every row at once (the LSTM runs across
/// them), so the rows are always computed together, also where only the first half acts (seq2seq).
/// </summary>
public sealed class PTuningEncoder : PromptTask
{
    private readonly PromptLstm? lstm;
    private readonly nn.Module<Tensor, Tensor> head;

    /// <summary>Builds the input table (N(0, 1)) and the encoder <c>config.EncoderType</c> names, under peft's module names.</summary>
    public PTuningEncoder(PromptConfig config) : base(nameof(PTuningEncoder), config)
    {
        long d = config.TokenDim, h = config.EffectiveEncoderHidden;
        embedding = new Modules.Embedding(config.TotalVirtualTokens, d);
        using (no_grad()) embedding.weight.normal_();
        register_module("embedding", embedding);
        switch (config.EncoderType)
        {
            case PromptEncoderType.Lstm:
                lstm = new PromptLstm(d, h, config.EncoderNumLayers, config.EncoderDropout);
                register_module("lstm_head", lstm);
                head = nn.Sequential(("0", nn.Linear(2 * h, 2 * h)), ("1", nn.ReLU()), ("2", nn.Linear(2 * h, d)));
                break;
            case PromptEncoderType.NemoMlp:
                head = nn.Sequential(("0", nn.Linear(d, h)), ("1", nn.GELU()), ("2", nn.Linear(h, d)));
                break;
            default:
                head = nn.Sequential(("0", nn.Linear(d, h)), ("1", nn.ReLU()), ("2", nn.Linear(h, h)), ("3", nn.ReLU()), ("4", nn.Linear(h, d)));
                break;
        }
        register_module("mlp_head", head);
    }

    /// <summary>The input table, [total virtual tokens, token dim] (peft's <c>embedding</c>); trained, but peft's file holds the encoder's output instead.</summary>
    public readonly Modules.Embedding embedding;

    /// <inheritdoc/>
    public override bool HasEncoder => true;

    /// <summary>The table through the encoder: (total virtual tokens, token dim).</summary>
    public override Tensor Rows()
    {
        using var scope = NewDisposeScope();
        Tensor x = embedding.weight;   // (N, d): one sequence of every virtual token
        if (lstm is not null) x = lstm.forward(x);   // (N, 2h)
        return head.forward(x).MoveToOuterDisposeScope();
    }
}
