#!/usr/bin/env bash
# Side by side on one GPU: `peft bench` (published self-contained, run on PyTorch's CUDA libraries) and
# hf_reference.py (transformers + peft, the same settings), then both numbers and their ratio per row.
#   here (needs the .NET SDK):   bench/gpu/run.sh pack       → .gpu/peft.tar.xz (git-ignored; about 30 MB)
#   on the GPU machine:          bench/gpu/run.sh run [OUTDIR]   (carry .gpu; needs python3 with torch, transformers, peft)
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
case "${1:-}" in
pack)
    set -e
    rm -rf "$root/.gpu/peft" && mkdir -p "$root/.gpu"
    dotnet publish "$root/src/PeftDsl.Cli" -c Release -r linux-x64 --self-contained -p:PeftDslNoLibTorch=true -o "$root/.gpu/peft" >&2
    tar -cJf "$root/.gpu/peft.tar.xz" -C "$root/.gpu" peft
    rm -rf "$root/.gpu/peft"
    ls -la "$root/.gpu/peft.tar.xz"
    ;;
run)
    out=${2:-${OUT:-/tmp/bench-gpu}}
    mkdir -p "$out" /tmp/peft-cli
    tar -xJf "$root/.gpu/peft.tar.xz" -C /tmp/peft-cli || { echo "no .gpu/peft.tar.xz: run 'bench/gpu/run.sh pack' first and carry .gpu" >&2; exit 2; }
    export LD_LIBRARY_PATH="$(python3 -c 'import torch, os; print(os.path.dirname(torch.__file__))')/lib"
    export PYTHONUNBUFFERED=1
    peft=/tmp/peft-cli/peft/peft
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    common=(--device cuda --dtype bf16 --lora-r 16 --steps 10)
    ours() { local name=$1; shift; echo "== ours: $name"; "$peft" bench "$@" --json "$out/ours_$name.json" || echo "FAILED ours $name"; }
    ours gpt2_lora_8x1024 --shape gpt2-small "${common[@]}" --batch 8 --length 1024 --new-tokens 0 --lora-targets c_attn attn.c_proj
    ours tinyllama_lora_4x1024 --shape tinyllama-1.1b "${common[@]}" --batch 4 --length 1024 --new-tokens 0 --lora-targets all
    ours t5base_lora_8x512 --shape t5-base "${common[@]}" --batch 8 --length 512 --new-tokens 0 --lora-targets q k v o wi wo
    ours generate_b1 --shape gpt2-small "${common[@]}" --batch 1 --length 32 --new-tokens 128 --lora-targets c_attn
    ours generate_b16 --shape gpt2-small "${common[@]}" --batch 16 --length 32 --new-tokens 128 --lora-targets c_attn
    ours single_16x256 --shape gpt2-small "${common[@]}" --batch 16 --length 256 --new-tokens 0 --lora-targets c_attn attn.c_proj
    ours mixed_16x256 --shape gpt2-small "${common[@]}" --batch 16 --length 256 --new-tokens 0 --lora-targets c_attn attn.c_proj --adapters 4 --mixed
    ours gpt2_dora_8x1024 --shape gpt2-small "${common[@]}" --method dora --batch 8 --length 1024 --new-tokens 0 --lora-targets c_attn attn.c_proj
    methods=(--device cuda --dtype bf16 --steps 10 --shape gpt2-small --new-tokens 0 --batch 8)
    ours gpt2_ia3_8x1024 "${methods[@]}" --method ia3 --length 1024
    for m in prompt ptuning prefix; do ours "gpt2_${m}_8x1000" "${methods[@]}" --method $m --virtual-tokens 20 --length 1000; done
    echo "== transformers + peft"
    python3 "$root/bench/gpu/hf_reference.py" "$out/hf.json" --steps 10 || echo "FAILED hf_reference.py"
    python3 "$root/bench/gpu/compare.py" "$out" | tee "$out/table.md"
    # Issue 13's one-rank NCCL check (no MPI here): the same 5 training steps with the gradient summed by NCCL over
    # one rank, and without; the losses must agree.
    echo "== NCCL one-rank check"
    nccl=$(mktemp -d)
    cp "$root/tests/fixtures/tokenizers/llama-bpe.model" "$nccl/tokenizer.model"
    python3 -c 'import json, random; random.seed(0); w = ["tuning", "adapters", "low", "rank", "hello", "world"]
print("\n".join(json.dumps({"input": f"Repeat: {x} =", "output": x}) for x in (random.choice(w) for _ in range(48))))' > "$nccl/train.jsonl"
    train=(train --model "$root/tests/fixtures/hf-peft/llama-base" --tokenizer "$nccl" --data "$nccl/train.jsonl" --batch 8 --steps 5
           --log-every 1 --lora-dropout 0 --device cuda)
    "$peft" "${train[@]}" --out "$nccl/plain" > "$nccl/plain.log" 2>&1 || { echo "FAILED plain run"; cat "$nccl/plain.log"; }
    # NCCL_CHECK_POINTERS: NCCL checks that the buffer is device memory of this GPU (a one-rank in-place sum is
    # otherwise a no-op, which would hide a wrong pointer).
    PEFTDSL_NCCL=1 NCCL_CHECK_POINTERS=1 "$peft" "${train[@]}" --out "$nccl/nccl" > "$nccl/nccl.log" 2>&1 || { echo "FAILED NCCL run"; cat "$nccl/nccl.log"; }
    grep "^ranks:" "$nccl/nccl.log" || echo "the NCCL run did not say it used NCCL"
    python3 - "$nccl" <<'PY' | tee -a "$out/table.md"
import json, sys
def losses(run):
    try:
        return [json.loads(l)["loss"] for l in open(f"{sys.argv[1]}/{run}/metrics.jsonl") if '"loss"' in l and '"lr"' in l]
    except OSError:
        return []
a, b = losses("plain"), losses("nccl")
ok = len(a) == 5 and len(a) == len(b) and max(abs(x - y) for x, y in zip(a, b)) <= 1e-6
print(f"NCCL one-rank check: {'PASS' if ok else 'FAIL'} (losses without NCCL {a}, with NCCL {b})")
PY
    # The device tool returns at most 8 files: the JSON files travel as one archive.
    tar -czf "$out/results.tgz" -C "$out" $(cd "$out" && ls *.json table.md) && rm -f "$out"/*.json
    ;;
*)
    echo "usage: bench/gpu/run.sh pack | run [OUTDIR]" >&2
    exit 2
    ;;
esac
