#!/usr/bin/env bash
# `tune report`: tunes two small shapes, writes the HTML report, renders it in headless
# Chromium and checks the plots are in the rendered DOM; bad input fails without output.
#   report_test.sh TUNE_CLI
set -euo pipefail
tune=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
browser=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
[[ -n $browser ]] || { echo "report test: no chromium (scripts/setup.sh installs it)"; exit 1; }

"$tune" gemm --m 16 --n 256 --k 128 --trans-b 1 --budget 5 --in-process -q --db "$work/t.db" > /dev/null 2>&1
"$tune" gemm --m 48 --n 64 --k 96 --budget 5 --in-process -q --db "$work/t.db" > /dev/null 2>&1
"$tune" report --db "$work/t.db" --html "$work/report.html"

# Self-contained: no scripts, no external resources.
if grep -Eiq '<script|<link|src=|href=|url\(' "$work/report.html"; then echo "report is not self-contained"; exit 1; fi

dom=$(timeout 120 "$browser" --headless --no-sandbox --disable-gpu --user-data-dir="$work/profile" \
        --dump-dom "file://$work/report.html" 2> "$work/chromium.log")
count() { grep -o "$1" <<< "$dom" | wc -l; }
[[ $(count '<svg id="progress-[0-9]*"') -eq 2 ]] || { echo "expected 2 best-so-far plots"; exit 1; }
[[ $(count '<svg id="speedup"') -eq 1 ]] || { echo "expected the speedup plot"; exit 1; }
[[ $(count '<polyline') -ge 2 ]] || { echo "expected best-so-far lines"; exit 1; }
grep -q 'vs cpu.gemm.openblas' <<< "$dom"
grep -q 'vs default config' <<< "$dom"
# This store has neither attention nor cost-model data: both sections say so, no empty plot.
[[ $(count 'No data:') -eq 2 ]] || { echo "expected 2 'No data' sections"; exit 1; }
[[ $(count '<svg id="pareto-') -eq 0 && $(count '<svg id="cost-model"') -eq 0 ]]

# A trained model: its predictions for the rows of its template beside their measured times.
"$tune" gemm --m 32 --n 32 --k 64 --budget 24 --in-process -q --db "$work/t.db" > /dev/null 2>&1
"$tune" model-train --db "$work/t.db" --template cpu.gemm.blocked > /dev/null
"$tune" report --db "$work/t.db" --html "$work/model.html"
grep -q '<svg id="cost-model"' "$work/model.html" || { echo "expected the cost-model plot"; exit 1; }
[[ $(grep -o 'No data:' "$work/model.html" | wc -l) -eq 1 ]] || { echo "expected 1 'No data' section (attention)"; exit 1; }

# Bad input: clear error, non-zero exit, no page written.
if "$tune" report --db "$work/missing.db" --html "$work/bad.html" 2> "$work/err.txt"; then
  echo "report on a missing store succeeded"; exit 1
fi
grep -q "missing.db" "$work/err.txt"
[[ ! -e $work/bad.html ]]
echo "report test: ok"
