#!/usr/bin/env bash
# The CPU row of issue 11: `peft bench` (gpt2-small, 4×128, fp32) against the same model hand-written in plain
# TorchSharp (../shared/tools/tsbench), alternating A/B/A/B in one run on one machine. Run it on an idle machine.
#   bench/cpu/vs-tsbench.sh [ROUNDS] [STEPS]        (defaults 2 and 3)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
rounds=${1:-2}; steps=${2:-3}
tsb=/tmp/tsbench
if [ ! -f "$tsb/out/tsbench.dll" ]; then
    src="$root/../shared/tools/tsbench"
    [ -d "$src" ] || { echo "no tsbench at $src (the shared tools folder)" >&2; exit 2; }
    rm -rf "$tsb" && cp -r "$src" "$tsb"
    dotnet build "$tsb" -c Release -o "$tsb/out" >/tmp/vs-tsbench-build.log 2>&1 || { cat /tmp/vs-tsbench-build.log >&2; exit 1; }
fi
dotnet build "$root/src/PeftDsl.Cli" -c Release >/tmp/vs-tsbench-build.log 2>&1 || { cat /tmp/vs-tsbench-build.log >&2; exit 1; }
# The libtorch the repository builds against (Directory.Packages.props), in this machine's NuGet cache.
libtorch=$(sed -n 's/.*"libtorch-cpu-linux-x64" Version="\([^"]*\)".*/\1/p' "$root/Directory.Packages.props")
nat="${NUGET_PACKAGES:-$HOME/.nuget/packages}/libtorch-cpu-linux-x64/$libtorch/runtimes/linux-x64/native"
[ -d "$nat" ] || { echo "no libtorch $libtorch at $nat: run scripts/setup.sh first" >&2; exit 2; }
peft() { dotnet "$root/src/PeftDsl.Cli/bin/Release/net10.0/linux-x64/peft.dll" "$@"; }
tsbench() { LD_LIBRARY_PATH=$nat TSB_BASE=1 TSB_V=50257 "$@" dotnet "$tsb/out/tsbench.dll" gpt cpu 4 128 12 768 "$steps" | sed -n 's/.*step_ms=\([0-9.]*\).*/\1/p'; }
echo "load average at the start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "| round | forward ms: PeftDsl / tsbench | full training step (AdamW, every weight) ms: PeftDsl / tsbench |"
echo "| --- | --- | --- |"
for i in $(seq 1 "$rounds"); do
    json=$(mktemp)
    trap 'rm -f "$json"' EXIT
    peft bench --shape gpt2-small --batch 4 --length 128 --steps "$steps" --new-tokens 0 --json "$json" >/dev/null
    ours_fwd=$(python3 -c "import json;print('%.0f'%json.load(open('$json'))['forward_ms'])")
    ours_step=$(python3 -c "import json;print('%.0f'%json.load(open('$json'))['train_step_ms'])")
    rm -f "$json"
    ts_fwd=$(tsbench env TSB_FWD=1)
    ts_step=$(tsbench env TSB_FULL=1)
    [ -n "$ts_fwd" ] && [ -n "$ts_step" ] || { echo "tsbench printed no step_ms" >&2; exit 1; }
    echo "| $i | $ours_fwd / ${ts_fwd%.*} ($(python3 -c "print('%.2f'%($ours_fwd/$ts_fwd))")×) | $ours_step / ${ts_step%.*} ($(python3 -c "print('%.2f'%($ours_step/$ts_step))")×) |"
done
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
