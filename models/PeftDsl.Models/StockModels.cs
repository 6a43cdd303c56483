using PeftDsl.Config;
using PeftDsl.Errors;
using PeftDsl.Models.Gpt2;
using PeftDsl.Models.Gemma2;
using PeftDsl.Models.Gemma3;
using PeftDsl.Models.GptNeoX;
using PeftDsl.Models.Llama;
using PeftDsl.Models.Mistral;
using PeftDsl.Models.Phi3;
using PeftDsl.Models.Qwen2;
using PeftDsl.Models.Qwen3;
using PeftDsl.Models.T5;
using PeftDsl.Runtime;

namespace PeftDsl.Models;

/// <summary>The stock model families, by config.json <c>model_type</c>.</summary>
public static class StockModels
{
    private static readonly Dictionary<string, Func<string, ModelLoadOptions?, CausalLanguageModel>> CausalLoaders = new()
    {
        ["gpt2"] = Gpt2LMHeadModel.FromPretrained,
        ["llama"] = LlamaForCausalLM.FromPretrained,
        ["gpt_neox"] = GptNeoXForCausalLM.FromPretrained,
        ["mistral"] = MistralForCausalLM.FromPretrained,
        ["qwen2"] = Qwen2ForCausalLM.FromPretrained,
        ["qwen3"] = Qwen3ForCausalLM.FromPretrained,
        ["gemma2"] = Gemma2ForCausalLM.FromPretrained,
        ["gemma3_text"] = Gemma3ForCausalLM.FromPretrained,
        ["phi3"] = Phi3ForCausalLM.FromPretrained,
    };

    private static readonly Dictionary<string, Func<string, ModelLoadOptions?, Seq2SeqLanguageModel>> Seq2SeqLoaders = new()
    {
        ["t5"] = T5ForConditionalGeneration.FromPretrained,
        ["mt5"] = T5ForConditionalGeneration.FromPretrained,
    };

    /// <summary>The <c>model_type</c> values of the supported decoder-only (causal LM) families.</summary>
    public static IReadOnlyCollection<string> CausalModelTypes => CausalLoaders.Keys;

    /// <summary>The <c>model_type</c> values of the supported encoder-decoder families.</summary>
    public static IReadOnlyCollection<string> Seq2SeqModelTypes => Seq2SeqLoaders.Keys;

    /// <summary>The config.json <c>model_type</c> of a checkpoint folder.</summary>
    public static string ModelTypeOf(string directory)
    {
        var config = Checkpoints.CheckpointFolder.ReadConfig(directory);
        return config.GetString("model_type")
            ?? throw new ConfigException($"{config.Source}: no \"model_type\", so the model family is unknown");
    }

    /// <summary>Whether <c>modelType</c> names a supported causal LM family.</summary>
    public static bool IsCausal(string modelType) => CausalLoaders.ContainsKey(modelType);

    /// <summary>Whether <c>modelType</c> names a supported encoder-decoder family.</summary>
    public static bool IsSeq2Seq(string modelType) => Seq2SeqLoaders.ContainsKey(modelType);

    /// <summary>Loads any supported checkpoint for generation, decoder-only or encoder-decoder.</summary>
    public static Generation.IGenerativeModel LoadGenerative(string directory, ModelLoadOptions? options = null)
    {
        var modelType = ModelTypeOf(directory);
        if (CausalLoaders.TryGetValue(modelType, out var causal)) return causal(directory, options);
        if (Seq2SeqLoaders.TryGetValue(modelType, out var seq2seq)) return seq2seq(directory, options);
        throw new ConfigException(
            $"{Path.Combine(directory, "config.json")}: model_type '{modelType}' is not supported (supported: {string.Join(", ", CausalLoaders.Keys.Concat(Seq2SeqLoaders.Keys))})" +
            (modelType == "gemma3" ? "; Gemma 3's multimodal checkpoints are not, but a text-only gemma3_text folder is" : ""));
    }

    /// <summary>Loads an encoder-decoder checkpoint whose family is one of <see cref="Seq2SeqModelTypes"/>.</summary>
    public static Seq2SeqLanguageModel LoadSeq2Seq(string directory, ModelLoadOptions? options = null)
    {
        var modelType = ModelTypeOf(directory);
        return Seq2SeqLoaders.TryGetValue(modelType, out var load)
            ? load(directory, options)
            : throw new ConfigException(
                $"{directory}: model_type '{modelType}' is not a supported encoder-decoder model (supported: {string.Join(", ", Seq2SeqLoaders.Keys)})");
    }

    /// <summary>Loads a causal LM checkpoint whose family is one of <see cref="CausalModelTypes"/>.</summary>
    public static CausalLanguageModel LoadCausal(string directory, ModelLoadOptions? options = null)
    {
        var modelType = ModelTypeOf(directory);
        return CausalLoaders.TryGetValue(modelType, out var load)
            ? load(directory, options)
            : throw new ConfigException(
                $"{Path.Combine(directory, "config.json")}: model_type '{modelType}' is not a supported causal LM (supported: {string.Join(", ", CausalLoaders.Keys)})" +
                (modelType == "gemma3" ? "; Gemma 3's multimodal checkpoints are not, but a text-only gemma3_text folder is" : ""));
    }
}
