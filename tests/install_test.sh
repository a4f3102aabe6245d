#!/usr/bin/env bash
# Installs libtune into a scratch prefix, builds examples/ as an outside project with
# find_package(libtune) and a C program with pkg-config, tunes a small shape with the installed CLI, and runs the example.
set -euo pipefail
src=$1 build=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cmake --install "$build" --prefix "$work/prefix" > "$work/install.log"
test -f "$work/prefix/lib/pkgconfig/libtune.pc"
test -f "$work/prefix/include/tune/dispatcher.hpp"
cmake -S "$src/examples" -B "$work/examples" -DCMAKE_PREFIX_PATH="$work/prefix" -DCMAKE_BUILD_TYPE=Release > "$work/configure.log"
cmake --build "$work/examples" -j2 > "$work/build.log"
"$work/prefix/bin/tune" gemm --m 16 --n 256 --k 128 --trans-b 1 --budget 4 -q --db "$work/t.db" > /dev/null
out=$("$work/examples/dispatch_gemm" "$work/t.db" 16 256 128)
echo "$out"
grep -q "source:   exact" <<< "$out"
out=$("$work/examples/dispatch_gemm" "$work/t.db" 20 256 128)
grep -q "source:   nearest" <<< "$out"
"$work/examples/dispatch_gemm_c" "$work/t.db" 16 256 128 | grep -q "source:   exact"

# pkg-config: a C program built with nothing but the compiler and pkg-config.
export PKG_CONFIG_PATH="$work/prefix/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
flags=$(pkg-config --cflags --libs libtune)
test "$(realpath "$(pkg-config --variable=prefix libtune)")" = "$(realpath "$work/prefix")"
cc -std=c11 -O2 -o "$work/dispatch_gemm_pc" "$src/examples/dispatch_gemm_c.c" $flags
out=$("$work/dispatch_gemm_pc" "$work/t.db" 20 256 128)
echo "$out"
grep -q "source:   nearest" <<< "$out"
echo "install test: ok"
