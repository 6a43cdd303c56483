namespace PeftDsl.Tokenization;

/// <summary>
/// Microsoft.ML.Tokenizers 2.0.1 indexes its Unigram vocabulary with the trainer spec's <c>bos_id</c>, so a model
/// without BOS (<c>bos_id = -1</c>: T5's and mT5's spiece.model) throws IndexOutOfRangeException. We rewrite that one
/// protobuf field to the UNK id before handing the bytes over: T5 never adds BOS, and the library then overwrites
/// that slot with UNK anyway. Everything else is copied byte for byte.
/// </summary>
internal static class SentencePieceModelPatch
{
    private const int TrainerSpecField = 2;    // ModelProto.trainer_spec
    private const int UnkIdField = 40;         // TrainerSpec.unk_id (default 0)
    private const int BosIdField = 41;         // TrainerSpec.bos_id (default 1)

    public static byte[] WithoutNegativeBos(byte[] model)
    {
        var fields = Fields(model);
        var spec = fields.FirstOrDefault(f => f.Number == TrainerSpecField && f.Wire == 2);
        if (spec.Payload is null) return model;
        var specFields = Fields(spec.Payload);
        var bos = specFields.FirstOrDefault(f => f.Number == BosIdField && f.Wire == 0);
        if (bos.Payload is null || (long)ReadVarint(bos.Payload, 0).Value >= 0) return model;
        var unk = specFields.FirstOrDefault(f => f.Number == UnkIdField && f.Wire == 0);
        var unkId = unk.Payload is null ? 0UL : ReadVarint(unk.Payload, 0).Value;
        var newSpec = Concat(specFields.Select(f => f.Number == BosIdField && f.Wire == 0 ? Field(BosIdField, 0, Varint(unkId)) : f.Raw));
        return Concat(fields.Select(f => f.Number == TrainerSpecField && f.Wire == 2 ? Field(TrainerSpecField, 2, Concat([Varint((ulong)newSpec.Length), newSpec])) : f.Raw));
    }

    private readonly record struct ProtoField(int Number, int Wire, byte[]? Payload, byte[] Raw);

    /// <summary>Top-level fields; Payload is the value (varint bytes, or the bytes of a length-delimited field).</summary>
    private static List<ProtoField> Fields(byte[] data)
    {
        var result = new List<ProtoField>();
        var at = 0;
        while (at < data.Length)
        {
            var start = at;
            var (tag, afterTag) = ReadVarint(data, at);
            at = afterTag;
            var wire = (int)(tag & 7);
            byte[] payload;
            switch (wire)
            {
                case 0:
                    var (_, afterValue) = ReadVarint(data, at);
                    payload = data[at..afterValue];
                    at = afterValue;
                    break;
                case 1:
                    payload = Slice(data, at, 8);
                    at += 8;
                    break;
                case 2:
                    var (length, afterLength) = ReadVarint(data, at);
                    if (length > (ulong)(data.Length - afterLength)) throw new InvalidDataException("length-delimited field runs past the end");
                    payload = data[afterLength..(afterLength + (int)length)];
                    at = afterLength + (int)length;
                    break;
                case 5:
                    payload = Slice(data, at, 4);
                    at += 4;
                    break;
                default:
                    throw new InvalidDataException($"unsupported protobuf wire type {wire}");
            }
            result.Add(new ProtoField((int)(tag >> 3), wire, payload, data[start..at]));
        }
        return result;
    }

    private static byte[] Slice(byte[] data, int at, int count) =>
        at + count <= data.Length ? data[at..(at + count)] : throw new InvalidDataException("fixed-width field runs past the end");

    private static (ulong Value, int Next) ReadVarint(byte[] data, int at)
    {
        ulong value = 0;
        for (var shift = 0; shift < 70; shift += 7)
        {
            if (at >= data.Length) throw new InvalidDataException("truncated varint");
            var b = data[at++];
            value |= (ulong)(b & 0x7F) << shift;
            if ((b & 0x80) == 0) return (value, at);
        }
        throw new InvalidDataException("varint longer than 10 bytes");
    }

    private static byte[] Varint(ulong value)
    {
        var bytes = new List<byte>();
        do
        {
            var b = (byte)(value & 0x7F);
            value >>= 7;
            bytes.Add(value == 0 ? b : (byte)(b | 0x80));
        } while (value != 0);
        return bytes.ToArray();
    }

    private static byte[] Field(int number, int wire, byte[] payload) => Concat([Varint(((ulong)number << 3) | (uint)wire), payload]);

    private static byte[] Concat(IEnumerable<byte[]> parts) => parts.SelectMany(p => p).ToArray();
}
