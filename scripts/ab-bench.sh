#!/bin/sh
# Times two builds of one Google Benchmark binary side by side: rounds alternate old and new
# (so drift on a shared machine hits both), each round's JSON is kept, and the summary gives
# per benchmark the fastest run of each build and old / new (> 1: the new build is faster).
# Usage: scripts/ab-bench.sh OLD_BINARY NEW_BINARY FILTER OUT_DIR [ROUNDS (2)] [extra flags...]
#   e.g. scripts/ab-bench.sh /tmp/old/bench_attention build/bench/bench_attention \
#            'decode_fused_best/' /tmp/ab 2 --long
set -eu
[ $# -ge 4 ] || { echo "usage: $0 OLD_BINARY NEW_BINARY FILTER OUT_DIR [ROUNDS] [flags...]" >&2; exit 2; }
old=$1 new=$2 filter=$3 out=$4
rounds=${5:-2}
[ $# -ge 5 ] && shift 5 || shift 4
for bin in "$old" "$new"; do [ -x "$bin" ] || { echo "$0: '$bin' is not an executable" >&2; exit 2; }; done
case $rounds in ''|*[!0-9]*|0) echo "$0: ROUNDS must be a positive integer, got '$rounds'" >&2; exit 2 ;; esac
mkdir -p "$out"
i=1
while [ "$i" -le "$rounds" ]; do
    for side in old new; do
        if [ "$side" = old ]; then bin=$old; else bin=$new; fi
        "$bin" "$@" --benchmark_filter="$filter" --benchmark_out="$out/$side-$i.json" \
            --benchmark_out_format=json > "$out/$side-$i.txt" 2>&1
    done
    i=$((i + 1))
done
python3 - "$out" "$rounds" <<'PY' | tee "$out/summary.txt"
import json, sys
out, rounds = sys.argv[1], int(sys.argv[2])
scale = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}
rows = {}
for side in ("old", "new"):
    for i in range(1, rounds + 1):
        for b in json.load(open(f"{out}/{side}-{i}.json"))["benchmarks"]:
            if b.get("run_type") == "aggregate":
                continue
            rows.setdefault(b["name"], {}).setdefault(side, []).append(b["real_time"] * scale[b["time_unit"]])
print(f"{'benchmark':70s} {'old ms':>9s} {'new ms':>9s} {'old/new':>7s}  runs (ms)")
for name, t in rows.items():
    if "old" not in t or "new" not in t:
        continue
    o, n = min(t["old"]), min(t["new"])
    runs = "old " + " ".join(f"{x:.3f}" for x in t["old"]) + " | new " + " ".join(f"{x:.3f}" for x in t["new"])
    print(f"{name:70s} {o:9.3f} {n:9.3f} {o / n:7.2f}  {runs}")
PY
