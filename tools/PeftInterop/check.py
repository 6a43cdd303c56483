# Loads every adapter PeftInterop wrote with Hugging Face peft (and every merged folder with transformers) and
# compares the logits with PeftDsl's. Usage: python3 check.py OUT [BASES]. Exit 1 on any mismatch.
import json, os, sys
import torch
from safetensors.torch import load_file
import transformers
from peft import PeftModel

out = sys.argv[1]
bases = sys.argv[2] if len(sys.argv) > 2 else None
TOL = 1e-4
failed = 0
classes = {"gpt2": "GPT2LMHeadModel", "llama": "LlamaForCausalLM", "t5": "T5ForConditionalGeneration", "mt5": "MT5ForConditionalGeneration"}


def base(case):
    path = case["base_dir"] if bases is None else os.path.join(bases, case["family"] + "-base")
    return getattr(transformers, classes[case["family"]]).from_pretrained(path).eval()


def logits(model, t, kind, **kw):
    batch = {"input_ids": t["input_ids"], "attention_mask": t["attention_mask"]}
    if kind == "seq2seq":
        batch["decoder_input_ids"] = t["decoder_input_ids"]
    with torch.no_grad():
        return model(**batch, **kw).logits


def compare(label, ours, theirs, t, kind):
    global failed
    if ours.shape != theirs.shape:
        print("FAIL", label, f"shape {tuple(ours.shape)} vs peft's {tuple(theirs.shape)}", flush=True)
        failed += 1
        return
    diff = (ours - theirs).abs()
    if kind == "causal":
        mask = t["attention_mask"].bool()
        virtual = ours.shape[1] - mask.shape[1]   # prompt tuning / P-tuning: virtual positions in front
        if virtual > 0:
            mask = torch.cat([torch.ones(mask.shape[0], virtual, dtype=torch.bool), mask], 1)
        diff = diff[mask]
    worst = diff.max().item()
    ok = worst <= TOL
    failed += not ok
    print(("PASS" if ok else "FAIL"), label, f"max_abs={worst:.2e}", flush=True)


print("transformers", transformers.__version__, "peft", __import__("peft").__version__)
for case in json.load(open(os.path.join(out, "manifest.json"))):
    t = load_file(os.path.join(out, case["name"] + ".ours.safetensors"))
    folder = os.path.join(out, case["name"])
    names = case["adapters"]
    model = None
    for i, name in enumerate(names):
        path = folder if name == "default" else os.path.join(folder, name)
        if model is None:
            model = PeftModel.from_pretrained(base(case), path, adapter_name=name)
        else:
            model.load_adapter(path, adapter_name=name)
    model.eval()
    for name in names:
        model.set_adapter(name)
        compare(f"{case['name']}[{name}]", t["logits_" + name], logits(model, t, case["kind"]), t, case["kind"])
    if case.get("mixed_rows"):
        compare(f"{case['name']}[mixed {','.join(case['mixed_rows'])}]", t["mixed_logits"],
                logits(model, t, case["kind"], adapter_names=case["mixed_rows"]), t, case["kind"])
    if case.get("merged"):
        model.set_adapter(names[0])
        compare(f"{case['name']}[peft merge_and_unload]", t["merged_logits"], logits(model.merge_and_unload(), t, case["kind"]), t, case["kind"])
        merged = getattr(transformers, classes[case["family"]]).from_pretrained(os.path.join(out, case["name"] + ".merged")).eval()
        compare(f"{case['name']}[our merged folder in transformers]", t["merged_logits"], logits(merged, t, case["kind"]), t, case["kind"])
print("FAILED" if failed else "ALL PASS", failed)
sys.exit(1 if failed else 0)
