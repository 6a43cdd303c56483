# Reads bench/gpu/run.sh's JSON files and prints the side-by-side table (markdown) with the ratio ours / peft.
import json, os, sys

out = sys.argv[1]


def load(name):
    path = os.path.join(out, name)
    return json.load(open(path)) if os.path.exists(path) else None


hf = load("hf.json") or {"rows": {}}
rows = hf["rows"]
print(f"device: {hf.get('device', '?')}; torch {hf.get('torch', '?')}, transformers {hf.get('transformers', '?')}, peft {hf.get('peft', '?')}\n")
print("| workload | PeftDsl | peft | ratio |")
print("| --- | --- | --- | --- |")


def line(label, ours, theirs, unit, higher_is_better=True):
    if ours is None or theirs is None:
        text = lambda v: "failed" if v is None else f"{v:,.0f} {unit}"
        print(f"| {label} | {text(ours)} | {text(theirs)} | |")
        return
    ratio = ours / theirs if higher_is_better else theirs / ours
    print(f"| {label} | {ours:,.0f} {unit} | {theirs:,.0f} {unit} | {ratio:.2f}× |")


for name, label in [("gpt2_lora_8x1024", "GPT-2 124M LoRA c_attn+c_proj, 8×1024, training step"),
                    ("tinyllama_lora_4x1024", "TinyLlama-1.1B LoRA all linears, 4×1024, training step"),
                    ("t5base_lora_8x512", "T5-base LoRA q,k,v,o,wi,wo, 8×(512+128), training step"),
                    ("gpt2_dora_8x1024", "GPT-2 124M DoRA c_attn+c_proj, 8×1024, training step"),
                    ("gpt2_ia3_8x1024", "GPT-2 124M IA3 (peft's default targets), 8×1024, training step"),
                    ("gpt2_prompt_8x1000", "GPT-2 124M prompt tuning, 20 virtual tokens, 8×1000, training step"),
                    ("gpt2_ptuning_8x1000", "GPT-2 124M P-tuning (MLP), 20 virtual tokens, 8×1000, training step"),
                    ("gpt2_prefix_8x1000", "GPT-2 124M prefix tuning, 20 virtual tokens, 8×1000, training step")]:
    ours = load(f"ours_{name}.json")
    theirs = rows.get(name)
    line(label, ours and ours["tokens_per_s"], theirs and theirs["tokens_per_s"], "tokens/s")
    if ours and theirs and "train_step_host_ms" in ours and "train_step_host_ms" in theirs:
        print("| … host queue time of a step / the step (ms) | %.1f / %.1f | %.1f / %.1f | |" % (
            ours["train_step_host_ms"], ours["train_step_ms"], theirs["train_step_host_ms"], theirs["train_step_ms"]))
    if theirs:
        # Both by NVML: what the run added to the device's use, the CUDA context included (peft's allocator peak, in
        # parentheses, leaves out the context and the cache's slack).
        ours_peak = None if not ours else ours.get("peak_bytes")
        theirs_peak = theirs.get("peak_nvml_bytes")
        ratio = "%.2f×" % (ours_peak / theirs_peak) if ours_peak and theirs_peak else ""
        print("| … peak GPU memory (NVML; ratio ours/peft, lower is better) | %s | %s (allocator peak %.2f GiB) | %s |" % (
            "not measured" if ours_peak is None else "%.2f GiB" % (ours_peak / 2**30),
            "not measured" if theirs_peak is None else "%.2f GiB" % (theirs_peak / 2**30),
            theirs["peak_bytes"] / 2**30, ratio))
for batch in (1, 16):
    ours = load(f"ours_generate_b{batch}.json")
    theirs = rows.get(f"generate_b{batch}")
    line(f"greedy generation, unmerged LoRA, 32-token prompts, 128 new, batch {batch}",
         ours and ours["generate_new_tokens_per_s"].get("cache"), theirs and theirs["new_tokens_per_s"], "new tokens/s")
single, mixed = load("ours_single_16x256.json"), load("ours_mixed_16x256.json")
theirs = rows.get("mixed_16x256")
ours_ratio = mixed["forward_ms"] / single["forward_ms"] if single and mixed else None
ours_text = "failed" if ours_ratio is None else "%.2f×" % ours_ratio
theirs_text = "failed" if not theirs else "%.2f×" % theirs["ratio"]
print("| mixed batch of 4 adapters, 16×256 forward, cost vs one adapter | %s | %s | |" % (ours_text, theirs_text))
