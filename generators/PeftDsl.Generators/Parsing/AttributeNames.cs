using System.Collections.Generic;
using System.Linq;
using PeftDsl.Generators.Model;

namespace PeftDsl.Generators.Parsing
{
    /// <summary>Metadata names of the DSL attributes in PeftDsl.Dsl (matched by name: the generator never
    /// references the runtime assembly).</summary>
    internal static class AttributeNames
    {
        private const string Ns = "PeftDsl.Dsl.";

        public const string ModelConfig = Ns + "ModelConfigAttribute";
        public const string ConfigKey = Ns + "ConfigKeyAttribute";

        public const string Body = Ns + "BodyAttribute";
        public const string SharedEmbedding = Ns + "SharedEmbeddingAttribute";
        public const string Encoder = Ns + "EncoderAttribute";
        public const string Decoder = Ns + "DecoderAttribute";
        public const string LmHead = Ns + "LmHeadAttribute";
        public const string TokenEmbedding = Ns + "TokenEmbeddingAttribute";
        public const string PositionEmbedding = Ns + "PositionEmbeddingAttribute";
        public const string RotaryEmbedding = Ns + "RotaryEmbeddingAttribute";
        public const string Blocks = Ns + "BlocksAttribute";
        public const string FinalNorm = Ns + "FinalNormAttribute";
        public const string Sublayer = Ns + "SublayerAttribute";
        public const string Projection = Ns + "ProjectionAttribute";

        public static readonly IReadOnlyDictionary<ModuleKind, string> Kinds = new Dictionary<ModuleKind, string>
        {
            [ModuleKind.CausalLM] = Ns + "CausalLMAttribute",
            [ModuleKind.Seq2SeqLM] = Ns + "Seq2SeqLMAttribute",
            [ModuleKind.TransformerStack] = Ns + "TransformerStackAttribute",
            [ModuleKind.TransformerBlock] = Ns + "TransformerBlockAttribute",
            [ModuleKind.SelfAttention] = Ns + "SelfAttentionAttribute",
            [ModuleKind.CrossAttention] = Ns + "CrossAttentionAttribute",
            [ModuleKind.FeedForward] = Ns + "FeedForwardAttribute",
        };

        /// <summary>Which components each kind accepts.</summary>
        public static readonly IReadOnlyDictionary<ModuleKind, string[]> Components = new Dictionary<ModuleKind, string[]>
        {
            [ModuleKind.CausalLM] = new[] { Body, LmHead },
            [ModuleKind.Seq2SeqLM] = new[] { SharedEmbedding, Encoder, Decoder, LmHead },
            [ModuleKind.TransformerStack] = new[] { TokenEmbedding, PositionEmbedding, RotaryEmbedding, Blocks, FinalNorm },
            [ModuleKind.TransformerBlock] = new[] { Sublayer },
            [ModuleKind.SelfAttention] = new[] { Projection },
            [ModuleKind.CrossAttention] = new[] { Projection },
            [ModuleKind.FeedForward] = new[] { Projection },
        };

        public static readonly HashSet<string> AllComponents = new(Components.Values.SelectMany(c => c));

        /// <summary>"PeftDsl.Dsl.SublayerAttribute" → "Sublayer", for messages.</summary>
        public static string Short(string metadataName)
        {
            var name = metadataName.Substring(metadataName.LastIndexOf('.') + 1);
            return name.EndsWith("Attribute") ? name.Substring(0, name.Length - "Attribute".Length) : name;
        }
    }
}
