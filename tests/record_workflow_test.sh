#!/usr/bin/env bash
# The record -> tune -> hit workflow: a runtime records the shapes it missed, `tune recorded`
# tunes them, and a second run of the runtime hits the store for every shape it saw.
set -euo pipefail
tune=$1 runtime=$2 model=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat > "$work/tiny.json" <<'JSON'
{"model_type":"llama","hidden_size":64,"num_attention_heads":4,"num_key_value_heads":2,"intermediate_size":96,"hidden_act":"silu"}
JSON
LIBTUNE_RECORD="$work/seen.jsonl" "$runtime" "$work/tiny.json" "$work/t.db" 1 3 7 | tee "$work/first.txt"
grep -q "0 shapes hit the store, 12 did not" "$work/first.txt"
test "$(wc -l < "$work/seen.jsonl")" -eq 12
"$tune" recorded --from "$work/seen.jsonl" --db "$work/t.db" --budget 3 -q | tee "$work/tune.txt"
grep -q "12 problems tuned" "$work/tune.txt"
"$runtime" "$work/tiny.json" "$work/t.db" 1 3 7 | tee "$work/second.txt"
grep -q "12 shapes hit the store, 0 did not" "$work/second.txt"
echo "record workflow: ok"
