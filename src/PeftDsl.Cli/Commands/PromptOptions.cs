using System.CommandLine;
using System.Globalization;
using PeftDsl.Errors;
using PeftDsl.Peft.Prompts;

namespace PeftDsl.Cli.Commands;

/// <summary>A new prompt-learning task's options (--method prompt, ptuning or prefix).</summary>
public sealed class PromptOptions
{
    /// <summary><c>--virtual-tokens</c>: virtual tokens per input for prompt, ptuning and prefix (default 20).</summary>
    public Option<int> VirtualTokens { get; } = new("--virtual-tokens") { Description = "prompt/ptuning/prefix: virtual tokens per input", DefaultValueFactory = _ => 20 };

    /// <summary><c>--prompt-init</c>: how prompt tuning starts its rows: <c>random</c> (default), <c>text</c> or <c>vocab</c>.</summary>
    public Option<string> Init { get; } = new("--prompt-init") { Description = "prompt: initial rows: random, text (--prompt-init-text) or vocab (sampled vocabulary rows)", DefaultValueFactory = _ => "random" };

    /// <summary><c>--prompt-init-text</c>: the text whose token embeddings start the rows, with <c>--prompt-init text</c>.</summary>
    public Option<string?> InitText { get; } = new("--prompt-init-text") { Description = "prompt: the text whose token embeddings start the rows (repeated or cut to length)" };

    /// <summary><c>--encoder</c>: the P-tuning encoder, <c>mlp</c> (default), <c>lstm</c> or <c>nemo-mlp</c>.</summary>
    public Option<string> Encoder { get; } = new("--encoder") { Description = "ptuning: mlp or lstm (peft's), nemo-mlp (NeMo's two-layer GeLU MLP)", DefaultValueFactory = _ => "mlp" };

    /// <summary><c>--encoder-hidden</c>: P-tuning/prefix encoder width (default: the model's hidden size).</summary>
    public Option<int?> EncoderHidden { get; } = new("--encoder-hidden") { Description = "ptuning/prefix: encoder width (default: the model's hidden size)" };

    /// <summary><c>--encoder-layers</c>: LSTM layers of <c>--encoder lstm</c> (default 2).</summary>
    public Option<int> EncoderLayers { get; } = new("--encoder-layers") { Description = "ptuning with lstm: LSTM layers", DefaultValueFactory = _ => 2 };

    /// <summary><c>--encoder-dropout</c>: dropout between the LSTM layers of <c>--encoder lstm</c>, in [0, 1) (default 0).</summary>
    public Option<double> EncoderDropout { get; } = new("--encoder-dropout") { Description = "ptuning with lstm: dropout between LSTM layers", DefaultValueFactory = _ => 0.0 };

    /// <summary><c>--prefix-projection</c>: prefix tuning produces its keys and values with a two-layer tanh MLP.</summary>
    public Option<bool> PrefixProjection { get; } = new("--prefix-projection") { Description = "prefix: produce the keys and values with a two-layer tanh MLP" };

    private Option[] All => [VirtualTokens, Init, InitText, Encoder, EncoderHidden, EncoderLayers, EncoderDropout, PrefixProjection];

    /// <summary>Adds the prompt-learning options to <paramref name="command"/>.</summary>
    public void AddTo(Command command)
    {
        foreach (var option in All) command.Options.Add(option);
    }

    /// <summary>The options given on the command line, to refuse them with a method they do not apply to.</summary>
    public IEnumerable<string> Given(ParseResult parse) =>
        All.Where(o => parse.GetResult(o) is { Implicit: false }).Select(o => o.Name);

    /// <summary>The prompt-learning configuration for <paramref name="method"/>; an option given that does not apply to the
    /// method, or an out-of-range value, is a bad-input error.</summary>
    public PromptConfig Config(ParseResult parse, PromptMethod method)
    {
        var name = method switch { PromptMethod.PTuning => "ptuning", PromptMethod.PrefixTuning => "prefix", _ => "prompt" };
        var applies = new Dictionary<Option, PromptMethod[]>
        {
            [Init] = [PromptMethod.PromptTuning],
            [InitText] = [PromptMethod.PromptTuning],
            [Encoder] = [PromptMethod.PTuning],
            [EncoderHidden] = [PromptMethod.PTuning, PromptMethod.PrefixTuning],
            [EncoderLayers] = [PromptMethod.PTuning],
            [EncoderDropout] = [PromptMethod.PTuning],
            [PrefixProjection] = [PromptMethod.PrefixTuning],
        };
        foreach (var (option, methods) in applies)
            if (parse.GetResult(option) is { Implicit: false } && !methods.Contains(method))
                throw new PeftDslException($"{option.Name} does not apply to --method {name}");
        var tokens = parse.GetValue(VirtualTokens);
        if (tokens <= 0) throw new PeftDslException($"--virtual-tokens must be a positive whole number, got {tokens}");
        var init = parse.GetValue(Init) switch
        {
            "random" => PromptInit.Random,
            "text" => PromptInit.Text,
            "vocab" => PromptInit.SampleVocab,
            var other => throw new PeftDslException($"--prompt-init: '{other}' is not random, text or vocab"),
        };
        var text = parse.GetValue(InitText);
        if (text is not null && init != PromptInit.Text)
            throw new PeftDslException("--prompt-init-text needs --prompt-init text");
        if (init == PromptInit.Text && string.IsNullOrEmpty(text))
            throw new PeftDslException("--prompt-init text needs --prompt-init-text \"…\"");
        var encoder = parse.GetValue(Encoder) switch
        {
            "mlp" => PromptEncoderType.Mlp,
            "lstm" => PromptEncoderType.Lstm,
            "nemo-mlp" => PromptEncoderType.NemoMlp,
            var other => throw new PeftDslException($"--encoder: '{other}' is not mlp, lstm or nemo-mlp"),
        };
        if (parse.GetValue(EncoderHidden) is { } hidden && hidden <= 0)
            throw new PeftDslException($"--encoder-hidden must be a positive whole number, got {hidden}");
        var layers = parse.GetValue(EncoderLayers);
        if (layers <= 0) throw new PeftDslException($"--encoder-layers must be a positive whole number, got {layers}");
        if (parse.GetResult(EncoderLayers) is { Implicit: false } && encoder != PromptEncoderType.Lstm)
            throw new PeftDslException("--encoder-layers applies to --encoder lstm");
        var dropout = parse.GetValue(EncoderDropout);
        if (!(dropout >= 0 && dropout < 1))
            throw new PeftDslException($"--encoder-dropout must be in [0, 1), got {dropout.ToString(CultureInfo.InvariantCulture)}");
        var config = new PromptConfig
        {
            Method = method,
            NumVirtualTokens = tokens,
            Init = init,
            InitText = text,
            EncoderType = encoder,
            EncoderHiddenSize = parse.GetValue(EncoderHidden) ?? 0,
            EncoderNumLayers = layers,
            EncoderDropout = dropout,
            PrefixProjection = parse.GetValue(PrefixProjection),
        };
        config.Validate("--virtual-tokens/--encoder");
        return config;
    }
}
