using System.Buffers.Binary;
using System.Text;
using PeftDsl.Checkpoints.Safetensors;
using PeftDsl.Config;
using PeftDsl.Errors;
using PeftDsl.Models.Llama;
using Xunit;
using static TorchSharp.torch;

namespace PeftDsl.Tests;

/// <summary>
/// Seeded fuzzing of the two files a user hands us: 10,000 random mutations each of a valid safetensors file and a
/// valid config.json. Every one must give a clean error (our exception types, with the file named) or a load
/// that reads back whole; never another exception, a crash or a hang.
/// </summary>
public sealed class FuzzTests
{
    private const int Mutations = 10_000;

    [Fact]
    public void MutatedSafetensorsFilesLoadOrGiveACleanError()
    {
        using var dir = new TempDir();
        var good = dir.File("good.safetensors");
        SafetensorsWriter.Save(good, new Dictionary<string, Tensor>
        {
            ["a"] = arange(6, dtype: ScalarType.Float32).view(2, 3),
            ["b"] = ones(4, dtype: ScalarType.BFloat16),
            ["c"] = arange(3, dtype: ScalarType.Int64),
        }, new Dictionary<string, string> { ["format"] = "pt" });
        var original = File.ReadAllBytes(good);
        var headerLength = (int)BinaryPrimitives.ReadUInt64LittleEndian(original);
        var random = new Random(20261126);
        var path = dir.File("fuzz.safetensors");
        int loaded = 0, refused = 0;
        for (var i = 0; i < Mutations; i++)
        {
            var bytes = Mutate(original, headerLength, random);
            File.WriteAllBytes(path, bytes);
            try
            {
                using var reader = SafetensorsReader.Open(path);
                foreach (var name in reader.Entries.Keys)
                {
                    using var t = reader.Read(name);
                    Assert.Equal(reader.Entries[name].Shape, t.shape);
                }
                loaded++;
            }
            catch (CheckpointException e)
            {
                Assert.Contains("fuzz.safetensors", e.Message);
                refused++;
            }
            catch (Exception e)
            {
                Assert.Fail($"mutation {i}: {e.GetType().Name}: {e.Message}");
            }
        }
        Assert.Equal(Mutations, loaded + refused);
        Assert.True(refused > Mutations / 2, $"only {refused} of {Mutations} mutations were refused; the mutator is too gentle");
    }

    [Fact]
    public void MutatedConfigsBindOrGiveACleanError()
    {
        const string good = """
            {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 512, "hidden_size": 32,
             "intermediate_size": 80, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
             "head_dim": 8, "hidden_act": "silu", "rms_norm_eps": 1e-06, "max_position_embeddings": 64,
             "rope_parameters": {"rope_theta": 10000.0, "rope_type": "default"}, "tie_word_embeddings": false,
             "attention_bias": false, "mlp_bias": false, "sliding_window": null}
            """;
        string[] pieces = ["-1", "0", "2000000000", "1e308", "-1e308", "NaN", "true", "null", "\"x\"", "[]", "{}", "0.5", "99999999999999999999", "\"default\"", "\"llama3\"", "4"];
        var random = new Random(26);
        int bound = 0, refused = 0;
        for (var i = 0; i < Mutations; i++)
        {
            var text = new StringBuilder(good);
            for (var edits = random.Next(1, 4); edits > 0; edits--)
            {
                var at = random.Next(text.Length);
                switch (random.Next(4))
                {
                    case 0: text.Remove(at, Math.Min(random.Next(1, 6), text.Length - at)); break;
                    case 1: text.Insert(at, pieces[random.Next(pieces.Length)]); break;
                    case 2: text[at] = (char)random.Next(32, 127); break;
                    default:
                        // Replace a whole value after a colon, so most mutations stay valid JSON and reach the binder.
                        var colon = text.ToString().IndexOf(':', at);
                        if (colon < 0) break;
                        var end = text.ToString().IndexOfAny([',', '}'], colon);
                        if (end < 0) break;
                        text.Remove(colon + 1, end - colon - 1).Insert(colon + 1, " " + pieces[random.Next(pieces.Length)]);
                        break;
                }
            }
            try
            {
                LlamaConfig.FromJson(ConfigJson.Parse(text.ToString(), "config.json"));
                bound++;
            }
            catch (ConfigException e)
            {
                Assert.StartsWith("config.json: ", e.Message);
                refused++;
            }
            catch (Exception e)
            {
                Assert.Fail($"mutation {i}: {e.GetType().Name}: {e.Message}\n{text}");
            }
        }
        Assert.True(bound > 0 && refused > 0, $"bound {bound}, refused {refused}");
    }

    private static byte[] Mutate(byte[] original, int headerLength, Random random)
    {
        var bytes = original.ToList();
        for (var edits = random.Next(1, 4); edits > 0; edits--)
        {
            var header = Math.Max(0, Math.Min(headerLength, bytes.Count - 8));   // header bytes still in the file
            switch (random.Next(6))
            {
                case 0:   // a byte of the header's JSON
                    if (header > 0) bytes[8 + random.Next(header)] = (byte)random.Next(256);
                    break;
                case 1:   // a digit of the header (offsets, shapes)
                    var digits = Enumerable.Range(8, header).Where(j => bytes[j] is >= (byte)'0' and <= (byte)'9').ToList();
                    if (digits.Count > 0) bytes[digits[random.Next(digits.Count)]] = (byte)('0' + random.Next(10));
                    break;
                case 2:   // the header length itself
                    var length = random.Next(3) switch { 0 => (ulong)random.Next(0, 400), 1 => ulong.MaxValue - (ulong)random.Next(100), _ => (ulong)(headerLength + random.Next(-8, 9)) };
                    var prefix = new byte[8];
                    BinaryPrimitives.WriteUInt64LittleEndian(prefix, length);
                    for (var j = 0; j < 8 && j < bytes.Count; j++) bytes[j] = prefix[j];
                    break;
                case 3:   // truncation
                    var cut = random.Next(bytes.Count + 1);
                    bytes.RemoveRange(cut, bytes.Count - cut);
                    break;
                case 4:   // bytes appended or inserted
                    var at = random.Next(bytes.Count + 1);
                    bytes.InsertRange(at, Enumerable.Range(0, random.Next(1, 9)).Select(_ => (byte)random.Next(256)));
                    break;
                default:  // a byte of the data
                    if (bytes.Count > 8 + headerLength) bytes[8 + headerLength + random.Next(bytes.Count - 8 - headerLength)] = (byte)random.Next(256);
                    break;
            }
        }
        return bytes.ToArray();
    }
}
