using PeftDsl.Checkpoints.Safetensors;
using PeftDsl.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftDsl.Cli.Parity;

/// <summary>
/// A case's inputs and how the reference ran them. Causal: logits where the attention mask is 1, labels =
/// input_ids with padding → -100. Seq2seq: eval on the full decoder_input_ids; training feeds decoder_input_ids[:, :-1]
/// against the reference's labels.
/// </summary>
internal sealed class CaseInputs(SafetensorsReader expected, bool causal)
{
    public Tensor Ids { get; } = expected.Read("input_ids");

    public Tensor Mask { get; } = expected.Read("attention_mask");

    private Tensor? DecoderIds { get; } = causal ? null : expected.Read("decoder_input_ids");

    /// <summary>(B, T, 1) where logits are compared, or null for all (seq2seq decoder logits).</summary>
    public Tensor? RealPositions(long rows) => causal ? (Mask.narrow(0, 0, rows) != 0).unsqueeze(-1) : null;

    public Tensor EvalLogits(LanguageModel model, IReadOnlyList<string>? adapterNames = null, long? rows = null)
    {
        var n = rows ?? Ids.shape[0];
        var ids = Ids.narrow(0, 0, n);
        var mask = Mask.narrow(0, 0, n);
        return causal
            ? ((CausalLanguageModel)model).Forward(ids, mask, adapterNames: adapterNames).Logits
            : ((Seq2SeqLanguageModel)model).Forward(ids, mask, DecoderIds!.narrow(0, 0, n), adapterNames: adapterNames).Logits;
    }

    public Tensor TrainLoss(LanguageModel model)
    {
        if (causal) return ((CausalLanguageModel)model).Forward(Ids, Mask, Ids.masked_fill(Mask == 0, Losses.IgnoreIndex)).Loss!;
        var teacherForced = DecoderIds!.narrow(1, 0, DecoderIds.shape[1] - 1);
        return ((Seq2SeqLanguageModel)model).Forward(Ids, Mask, teacherForced, expected.Read("labels")).Loss!;
    }
}
