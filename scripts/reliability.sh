#!/usr/bin/env bash
# Kill/resume reliability report: runs `tune gemm` on a small problem, kill -9's it at a random
# moment N times (default 20), re-running the same command each time, then checks that every
# measurement seen after any kill is still present exactly once with the same id and time, and
# that `tune db verify` is clean. Usage: scripts/reliability.sh [BUILD_DIR] [CYCLES]
set -euo pipefail
build=${1:-build}
cycles=${2:-20}
tune="$build/cli/tune"
[[ -x $tune ]] || { echo "no $tune: build first" >&2; exit 2; }
command -v sqlite3 >/dev/null || { echo "needs the sqlite3 command (apt-get install sqlite3)" >&2; exit 2; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
db="$dir/tuned.db"
args=(gemm --m 192 --n 160 --k 128 --budget 400 --strategy random --seed 11 -q --db "$db")
rows() {  # key|id|created_at of every measurement
    [[ -f $db ]] || return 0
    # A kill before the schema was created leaves no table yet.
    [[ $(sqlite3 "$db" "SELECT count(*) FROM sqlite_master WHERE name='measurements'") == 1 ]] || return 0
    sqlite3 "$db" "SELECT problem_key||'/'||device_id||'/'||template||'/'||template_version||'/'||config_hash, id, created_at FROM measurements ORDER BY 1"
}
: >"$dir/seen"
killed_with_rows=0
for ((i = 1; i <= cycles; i++)); do
    "$tune" "${args[@]}" >/dev/null 2>&1 &
    pid=$!
    sleep "0.$(printf '%03d' $((RANDOM % 600 + 20)))"
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    rows >"$dir/now"
    lost=$(comm -23 "$dir/seen" "$dir/now" | wc -l)
    [[ $lost -eq 0 ]] || { echo "cycle $i: $lost completed measurements lost or re-measured" >&2; comm -23 "$dir/seen" "$dir/now" >&2; exit 1; }
    printf 'cycle %2d: killed, %3d rows stored, 0 lost\n' "$i" "$(wc -l <"$dir/now")"
    cp "$dir/now" "$dir/seen"
done
"$tune" "${args[@]}" >/dev/null
rows >"$dir/final"
lost=$(comm -23 "$dir/seen" "$dir/final" | wc -l)
dupes=$(sqlite3 "$db" "SELECT count(*) - count(DISTINCT problem_key||device_id||template||template_version||config_hash) FROM measurements")
"$tune" db verify --db "$db" >/dev/null
echo "report: $cycles kill -9 / resume cycles, $(wc -l <"$dir/seen") rows before the final run, $(wc -l <"$dir/final") after;" \
     "lost $lost, duplicated $dupes, runs $(sqlite3 "$db" 'SELECT count(*) FROM runs'), tune db verify: clean"
[[ $lost -eq 0 && $dupes -eq 0 ]]
