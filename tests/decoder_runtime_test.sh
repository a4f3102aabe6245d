#!/usr/bin/env bash
# The reference decoder runtime on a tiny GQA config: tunes its GEMM and SwiGLU shapes, runs
# prefill and decode with the tuned store, template defaults and OpenBLAS, with the MLP fused and
# as two GEMMs (it fails when the back ends' outputs disagree), and rejects bad input.
#   decoder_runtime_test.sh TUNE_CLI DECODER_RUNTIME
set -euo pipefail
tune=$1 runtime=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat > "$work/tiny.json" <<'JSON'
{"model_type":"llama","hidden_size":64,"num_attention_heads":4,"num_key_value_heads":2,"intermediate_size":96,"hidden_act":"silu"}
JSON
"$tune" model "$work/tiny.json" --tokens 1,8 --budget 3 --in-process -q --db "$work/t.db" > /dev/null 2>&1
out=$("$runtime" "$work/tiny.json" "$work/t.db" --prompt 8 --decode 6 --reps 1)
echo "$out"
grep -q "8 of 8 GEMM shapes and 2 of 2 SwiGLU shapes tuned exactly" <<< "$out"
grep -Eq "mlp \(--mlp auto\): tuned runs 8 tokens (fused SwiGLU|two GEMMs \+ elementwise), 1 tokens" <<< "$out"
for mode in tuned defaults openblas; do grep -Eq "^$mode +[0-9.]+ +[0-9.]+ +[0-9.]+x$" <<< "$out"; done
# Rows an earlier build stored (another template version) are counted, not served.
if grep -q "for other template versions" <<< "$out"; then echo "a fresh store reported stale rows"; exit 1; fi
cp "$work/t.db" "$work/stale.db"
python3 -c "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute(\"UPDATE measurements SET template_version = 'earlier' WHERE template = 'cpu.gemm.blocked'\"); c.commit()" "$work/stale.db"
grep -Eq "^store: [0-9]+ rows are for other template versions and are ignored" <<< "$("$runtime" "$work/tiny.json" "$work/stale.db" --prompt 8 --decode 2 --reps 1)"
for form in swiglu gemms; do
  forced=$("$runtime" "$work/tiny.json" "$work/t.db" --prompt 8 --decode 6 --reps 1 --mlp $form)
  expect=$([[ $form == swiglu ]] && echo "fused SwiGLU" || echo "two GEMMs + elementwise")
  grep -q "tuned runs 8 tokens $expect, 1 tokens $expect" <<< "$forced"
done

# bf16 weights and KV cache, against oneDNN's bf16 GEMMs (where the CPU has AVX512-BF16).
if grep -qw avx512_bf16 /proc/cpuinfo; then
  "$tune" model "$work/tiny.json" --tokens 1,8 --budget 3 --in-process -q --dtype bf16 --db "$work/t16.db" > /dev/null 2>&1
  bf16=$("$runtime" "$work/tiny.json" "$work/t16.db" --prompt 8 --decode 6 --reps 1 --dtype bf16)
  echo "$bf16"
  grep -q "bf16 weights and KV cache" <<< "$bf16"
  grep -q "8 of 8 GEMM shapes and 2 of 2 SwiGLU shapes tuned exactly" <<< "$bf16"
  for mode in tuned defaults onednn; do grep -Eq "^$mode +[0-9.]+ +[0-9.]+ +[0-9.]+x$" <<< "$bf16"; done
  # The f32 store holds no bf16 shape: the runtime still runs, from the templates' defaults.
  grep -q "0 of 8 GEMM shapes and 0 of 2 SwiGLU" <<< "$("$runtime" "$work/tiny.json" "$work/t.db" --prompt 8 --decode 2 --reps 1 --dtype bf16)"
fi

# Bad input: non-zero exit and a message naming the problem.
echo '{"model_type":"gpt2","n_embd":64,"n_head":4}' > "$work/gpt2.json"
rejects() {  # rejects EXPECTED_MESSAGE ARGS...
  local expect=$1; shift
  if "$runtime" "$@" 2> "$work/err"; then echo "accepted bad input: $*"; exit 1; fi
  grep -q -- "$expect" "$work/err" || { echo "message lacks '$expect':"; cat "$work/err"; exit 1; }
}
rejects "not gated with silu" "$work/gpt2.json" "$work/t.db"
rejects "--decode" "$work/tiny.json" "$work/t.db" --decode 0
rejects "missing.db" "$work/tiny.json" "$work/missing.db"
rejects "--mlp: expected auto, swiglu or gemms" "$work/tiny.json" "$work/t.db" --mlp fused
rejects "unknown option '--prompts'" "$work/tiny.json" "$work/t.db" --prompts 8
rejects "--dtype: expected f32 or bf16" "$work/tiny.json" "$work/t.db" --dtype f16
echo "decoder runtime test: ok"
