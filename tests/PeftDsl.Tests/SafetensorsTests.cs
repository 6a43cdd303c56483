using System.Buffers.Binary;
using System.Text;
using PeftDsl.Checkpoints.Safetensors;
using PeftDsl.Errors;
using Xunit;
using static TorchSharp.torch;

namespace PeftDsl.Tests;

public sealed class SafetensorsTests
{
    [Fact]
    public void RoundTripsEveryDType()
    {
        using var dir = new TempDir();
        var tensors = new Dictionary<string, Tensor>
        {
            ["f32"] = randn(3, 4),
            ["bf16"] = randn(5).to(ScalarType.BFloat16),
            ["f16"] = randn(2, 2).to(ScalarType.Float16),
            ["i64"] = arange(7, dtype: ScalarType.Int64),
            ["bool"] = tensor(new[] { true, false, true }),
            ["empty"] = zeros(0, 3),
        };
        SafetensorsWriter.Save(dir.File("t.safetensors"), tensors, new Dictionary<string, string> { ["format"] = "pt" });

        using var reader = SafetensorsReader.Open(dir.File("t.safetensors"));
        Assert.Equal("pt", reader.Metadata["format"]);
        foreach (var (name, expected) in tensors)
        {
            var actual = reader.Read(name);
            Assert.Equal(expected.dtype, actual.dtype);
            Assert.Equal(expected.shape, actual.shape);
            Assert.True(expected.NumberOfElements == 0 || expected.to(ScalarType.Float64).allclose(actual.to(ScalarType.Float64)), name);
        }
    }

    [Fact]
    public void ReadsFixtureTensorsWithTheirDeclaredShapes()
    {
        using var reader = SafetensorsReader.Open(Fixtures.Expected("gpt2.base"));
        Assert.Equal(ScalarType.Int64, reader.Entry("input_ids").DType);
        Assert.Equal(2, reader.Read("input_ids").shape[0]);
    }

    [Fact]
    public void TruncatedFileIsRejected()
    {
        using var dir = new TempDir();
        var good = WriteSample(dir);
        var bytes = File.ReadAllBytes(good);
        File.WriteAllBytes(dir.File("cut.safetensors"), bytes[..^8]);

        var e = Assert.Throws<CheckpointException>(() => SafetensorsReader.Open(dir.File("cut.safetensors")));
        Assert.Contains("cut.safetensors", e.Message);
        Assert.Contains("past the end of the data", e.Message);
    }

    [Fact]
    public void FileShorterThanTheLengthPrefixIsRejected()
    {
        using var dir = new TempDir();
        File.WriteAllBytes(dir.File("tiny.safetensors"), [1, 2, 3]);
        var e = Assert.Throws<CheckpointException>(() => SafetensorsReader.Open(dir.File("tiny.safetensors")));
        Assert.Contains("shorter than the 8-byte header length", e.Message);
    }

    [Fact]
    public void HeaderLengthBeyondTheFileIsRejectedWithoutAllocating()
    {
        using var dir = new TempDir();
        var bytes = new byte[64];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, ulong.MaxValue / 2);
        File.WriteAllBytes(dir.File("lie.safetensors"), bytes);
        var e = Assert.Throws<CheckpointException>(() => SafetensorsReader.Open(dir.File("lie.safetensors")));
        Assert.Contains("header length", e.Message);
    }

    [Theory]
    [InlineData("""{"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,64]}}""", "run past the end of the data")]
    [InlineData("""{"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,8]}}""", "needs 16 bytes")]
    [InlineData("""{"w":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,16]}}""", "overflows")]
    [InlineData("""{"w":{"dtype":"F32","shape":[1152921504606846976,4],"data_offsets":[0,16]}}""", "too large")]
    [InlineData("""{"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,16]}}""", "not a non-negative integer")]
    [InlineData("""{"w":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}}""", "end before they begin")]
    [InlineData("""{"w":{"dtype":"Q4","shape":[2],"data_offsets":[0,8]}}""", "unsupported dtype 'Q4'")]
    [InlineData("""{"w":{"dtype":"F32","shape":[2]}}""", "needs 'dtype', 'shape' and 'data_offsets'")]
    [InlineData("""{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}""", "overlap")]
    [InlineData("""{"w": [1, 2""", "not valid JSON")]
    [InlineData("""[1, 2]""", "not a JSON object")]
    [InlineData("""{"__metadata__":{"a":1}}""", "must be a string")]
    [InlineData("""{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[12,16]}}""", "the data section has 4 bytes no tensor accounts for, before 'b'")]
    [InlineData("""{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}""", "8 bytes follow the last tensor's data")]
    public void LyingHeaderIsRejected(string header, string message)
    {
        using var dir = new TempDir();
        var path = dir.File("bad.safetensors");
        WriteRaw(path, header, dataBytes: 16);
        var e = Assert.Throws<CheckpointException>(() => SafetensorsReader.Open(path));
        Assert.Contains(message, e.Message);
        Assert.Contains("bad.safetensors", e.Message);
    }

    [Fact]
    public void MissingFileIsAClearError()
    {
        var e = Assert.Throws<CheckpointException>(() => SafetensorsReader.Open("/nonexistent/model.safetensors"));
        Assert.Contains("file not found", e.Message);
    }

    [Fact]
    public void WriterLeavesNoPartialFileBehind()
    {
        using var dir = new TempDir();
        WriteSample(dir);
        Assert.Single(Directory.GetFiles(dir.Path));
    }

    private static string WriteSample(TempDir dir)
    {
        var path = dir.File("good.safetensors");
        SafetensorsWriter.Save(path, new Dictionary<string, Tensor> { ["a"] = ones(4), ["b"] = zeros(2, 3) });
        return path;
    }

    private static void WriteRaw(string path, string header, int dataBytes)
    {
        var json = Encoding.UTF8.GetBytes(header);
        var bytes = new byte[8 + json.Length + dataBytes];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, (ulong)json.Length);
        json.CopyTo(bytes, 8);
        File.WriteAllBytes(path, bytes);
    }
}
