#!/bin/sh
# Builds the libFuzzer targets with clang (AddressSanitizer) in BIN and runs each briefly on its
# seed corpus. The normal build and CI use GCC, so without this the clang build (the one that
# fuzzes) breaks unnoticed: clang 14 lacks _Float16 on x86-64 and lambdas capturing structured
# bindings, which GCC accepts. Exit 77 (skipped) when clang++ or its fuzzer runtime is missing.
# Usage: fuzz/clang_check.sh SOURCE_DIR BIN_DIR [RUNS]
set -eu
src=$1 bin=$2 runs=${3:-20000}
command -v clang++ >/dev/null 2>&1 || { echo "skipped: no clang++ (apt-get install clang libclang-rt-14-dev)"; exit 77; }
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
printf 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }\n' > "$probe/p.cpp"
clang++ -fsanitize=fuzzer "$probe/p.cpp" -o "$probe/p" >/dev/null 2>&1 ||
    { echo "skipped: clang++ has no libFuzzer runtime (apt-get install libclang-rt-14-dev)"; exit 77; }
cmake -S "$src" -B "$bin" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
    -DLIBTUNE_BUILD_FUZZ=ON -DLIBTUNE_BUILD_TESTS=OFF -DLIBTUNE_BUILD_BENCH=OFF \
    -DCMAKE_CXX_FLAGS=-fsanitize=fuzzer-no-link,address -DCMAKE_EXE_LINKER_FLAGS=-fsanitize=address >/dev/null
cmake --build "$bin" --target fuzz_model_config fuzz_config fuzz_measurement fuzz_cli_args
for t in model_config config measurement cli_args; do
    mkdir -p "$bin/fuzz_work_$t"
    "$bin/fuzz/fuzz_$t" -runs="$runs" -max_len=4096 "$bin/fuzz_work_$t" "$src/fuzz/corpus/$t" 2>"$bin/fuzz_$t.log" ||
        { tail -40 "$bin/fuzz_$t.log"; echo "fuzz_$t failed"; exit 1; }
    grep -E "^Done" "$bin/fuzz_$t.log" | sed "s/^/fuzz_$t: /"
done
