using System.CommandLine;
using PeftDsl.Errors;
using PeftDsl.Peft.Lora;

namespace PeftDsl.Cli.Commands;

/// <summary>A new LoRA adapter's options: rank, alpha, dropout, targets, DoRA, rsLoRA.</summary>
public sealed class LoraOptions
{
    public Option<int> Rank { get; } = new("--r") { Description = "LoRA rank", DefaultValueFactory = _ => 8 };

    public Option<double?> Alpha { get; } = new("--alpha") { Description = "LoRA alpha (default: 2 × r); the update is scaled by alpha / r" };

    public Option<double> Dropout { get; } = new("--lora-dropout") { Description = "Dropout on the adapter's input while training", DefaultValueFactory = _ => 0.05 };

    public Option<string[]> Targets { get; } = new("--targets")
    {
        Description = "Modules to adapt, space- or comma-separated: module names (c_attn, q_proj), NeMo site names (attention_qkv), attention, mlp, all (default: peft's for the model)",
        AllowMultipleArgumentsPerToken = true,
    };

    public Option<bool> Dora { get; } = new("--dora") { Description = "DoRA: learn a magnitude per output row as well" };

    public Option<bool> RsLora { get; } = new("--rslora") { Description = "rsLoRA: scale by alpha / √r" };

    public void AddTo(Command command)
    {
        foreach (var option in new Option[] { Rank, Alpha, Dropout, Targets, Dora, RsLora }) command.Options.Add(option);
    }

    /// <summary>The LoRA options given on the command line, to refuse them with another method.</summary>
    public IEnumerable<string> Given(ParseResult parse) =>
        new Option[] { Rank, Alpha, Dropout, Targets, Dora, RsLora }.Where(o => parse.GetResult(o) is { Implicit: false }).Select(o => o.Name);

    public LoraConfig Config(ParseResult parse)
    {
        var targets = (parse.GetValue(Targets) ?? []).SelectMany(t => t.Split([',', ' '], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)).ToList();
        if (parse.GetResult(Targets) is { Implicit: false } && targets.Count == 0)
            throw new PeftDslException("--targets names no module; leave it out for the model's default targets");
        var rank = parse.GetValue(Rank);
        if (rank <= 0) throw new PeftDslException($"--r must be a positive whole number, got {rank}");
        if (parse.GetValue(Alpha) is { } alpha && alpha <= 0)
            throw new PeftDslException($"--alpha must be positive (the update is scaled by alpha / r), got {alpha.ToString(System.Globalization.CultureInfo.InvariantCulture)}");
        var dropout = parse.GetValue(Dropout);
        if (!(dropout >= 0 && dropout < 1))
            throw new PeftDslException($"--lora-dropout must be in [0, 1), got {dropout.ToString(System.Globalization.CultureInfo.InvariantCulture)}");
        return new LoraConfig
        {
            R = rank,
            Alpha = parse.GetValue(Alpha) ?? 2.0 * rank,
            Dropout = parse.GetValue(Dropout),
            TargetModules = targets.Count == 0 ? null : targets,
            UseDora = parse.GetValue(Dora),
            UseRsLora = parse.GetValue(RsLora),
        }.Validate("--r/--alpha/--lora-dropout");
    }
}
