#!/usr/bin/env bash
# Records whole reduced GEMM spaces (every config measured) for replaying search strategies
# and evaluating the cost model offline: `tune replay --db OUT` and `tune model-report --db OUT`.
# Usage: scripts/record_spaces.sh OUT.db [small|large|holdout]   (resumes: measured configs are kept)
# `holdout`: ten other shapes over the same space as `large`, to test settings chosen on `large`.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: scripts/record_spaces.sh OUT.db [small|large|holdout]}
size=${2:-large}
tune=./build/cli/tune

# f32, B stored n x k (PyTorch weights), one thread: the blocking knobs alone.
if [[ $size == small ]]; then
  only="ukernel=avx512_8x32,avx512_12x32,avx512_4x64 mc=48,96,192 kc=128,512 nc=384,1536 pack_a=0,1 threads=1 split=m"
  shapes=("64 256 256" "128 512 128" "256 128 512" "32 384 256")
else
  only="ukernel=avx512_6x32,avx512_8x32,avx512_12x32,avx512_8x48,avx512_4x64 mc=48,96,192,384 kc=128,256,512,1024 nc=384,1536,6144 pack_a=0,1 threads=1 split=m"
  shapes=("16 1024 1024" "64 512 512" "128 1024 512" "256 256 1024" "256 768 256" "512 512 256"
          "96 2048 256" "200 600 300" "32 4096 512" "384 384 768")
  if [[ $size == holdout ]]; then
    shapes=("48 768 768" "24 2048 1024" "160 512 512" "320 320 640" "128 2048 256" "64 1536 384"
            "448 256 512" "8 4096 1024" "192 1024 384" "112 640 640")
  elif [[ $size != large ]]; then
    echo "record_spaces.sh: size '$size' is not small, large or holdout" >&2
    exit 2
  fi
fi
for s in "${shapes[@]}"; do
  read -r m n k <<< "$s"
  "$tune" sweep --m "$m" --n "$n" --k "$k" --trans-b 1 --only "$only" --db "$out" -q
done
