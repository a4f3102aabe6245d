#!/usr/bin/env bash
# Builds the tests and the CLI with a sanitizer and runs the test suite tag by tag.
#   scripts/sanitize.sh address [build-dir] [tag...]   AddressSanitizer + UBSan
#   scripts/sanitize.sh thread  [build-dir] [tag...]   ThreadSanitizer
# Slow (a full build, then every tag; about an hour on 2 cores), so not part of CI. Expected
# reports: the hostile test templates (tests/hostile_template.hpp) crash and hoard on purpose,
# worker processes under an RLIMIT_AS cap fail under ASan's shadow memory, TSan cannot follow
# fork()ed workers, and OpenBLAS / XGBoost (libgomp) / OpenMPI are not instrumented (their
# own synchronisation shows as races). A report with a frame in this repository is a finding.
set -euo pipefail
cd "$(dirname "$0")/.."
kind=${1:?usage: scripts/sanitize.sh address|thread [build-dir] [tag...]}
case "$kind" in
  address) flags="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" ;;
  thread) flags="-fsanitize=thread" ;;
  *) echo "sanitize: '$kind' is neither address nor thread" >&2; exit 2 ;;
esac
dir=${2:-build-$kind}
shift $(( $# < 2 ? $# : 2 ))
cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLIBTUNE_WITH_CUDA=OFF -DLIBTUNE_WITH_HIP=OFF \
  -DLIBTUNE_BUILD_BENCH=OFF -DCMAKE_CXX_FLAGS="$flags" -DCMAKE_C_FLAGS="$flags" \
  -DCMAKE_EXE_LINKER_FLAGS="$flags" -DCMAKE_SHARED_LINKER_FLAGS="$flags" > /dev/null
cmake --build "$dir" -j"$(nproc)" --target tune_tests c_api_test tune_cli
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=0 second_deadlock_stack=1}
tags=("$@")
if ((${#tags[@]} == 0)); then
  mapfile -t tags < <("$dir/tests/tune_tests" --list-tags | sed -n 's/^ *[0-9]\+ *\(\[[^]]*\]\)$/\1/p' | grep -v '^\[overhead\]$')
fi
mkdir -p "$dir/sanitize-logs"
failed=0
for tag in "${tags[@]}"; do
  log="$dir/sanitize-logs/${tag//[^a-z0-9_]/}.log"
  if "$dir/tests/tune_tests" "$tag" > "$log" 2>&1; then echo "ok      $tag"; else echo "FAILED  $tag  ($log)"; failed=1; fi
done
exit $failed
