#!/bin/sh
# Compares the best-config tables of two tuning stores (`tune db best`): one line per shape
# that differs, then how many of the shapes both stores tuned have the same best (template,
# config). Timings are ignored. Exit status 0 when every shape matches, 1 otherwise.
# Usage: scripts/compare-best.sh a.db b.db [path/to/tune]
set -eu
a=$1 b=$2 tune=${3:-./build/cli/tune}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$tune" db best --db "$a" | cut -f1-3 | sort > "$tmp/a"
"$tune" db best --db "$b" | cut -f1-3 | sort > "$tmp/b"
cut -f1 "$tmp/a" | sort -u > "$tmp/keys_a"
cut -f1 "$tmp/b" | sort -u > "$tmp/keys_b"
both=$(comm -12 "$tmp/keys_a" "$tmp/keys_b" | wc -l)
same=$(comm -12 "$tmp/a" "$tmp/b" | wc -l)
comm -12 "$tmp/keys_a" "$tmp/keys_b" | while IFS= read -r key; do
    left=$(grep -F "$key	" "$tmp/a" | cut -f2-3 | tr '\t' ' ')
    right=$(grep -F "$key	" "$tmp/b" | cut -f2-3 | tr '\t' ' ')
    [ "$left" = "$right" ] || printf 'differs: %s\n  %s: %s\n  %s: %s\n' "$key" "$a" "$left" "$b" "$right"
done
echo "same best config: $same of $both shapes"
[ "$same" -eq "$both" ]
