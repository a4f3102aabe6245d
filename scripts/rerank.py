#!/usr/bin/env python3
"""Re-ranks the confirmation rounds stored in pairs of tuning stores by alternative rules and
counts the shapes on which both stores of a pair pick the same config. For judging the ranking
rule (tune/confirmation.hpp) on real re-measurements, e.g. a single-process and an MPI run.

Usage: scripts/rerank.py A.db:B.db [C.db:D.db ...]
Rules: the fastest re-measurement ("min"), the second-fastest ("2nd", what the Tuner uses) and
the median, each with a 2% and a 5% tie band; ties go to the smallest (template, config hash).
"""
import sqlite3
import statistics
import sys


def load(path):
    """{shape key: {(template, config hash): [ranking time of each re-measurement]}} of the
    newest finalist set per shape."""
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    rows = con.execute("SELECT problem_key, template, config_hash, finalists, id, min_s, median_s "
                       "FROM confirmations").fetchall()
    newest = {}
    for key, _, _, finalists, row_id, _, _ in rows:
        if key not in newest or row_id > newest[key][0]:
            newest[key] = (row_id, finalists)
    shapes = {}
    for key, template, config_hash, finalists, _, min_s, median_s in rows:
        if finalists != newest[key][1]:
            continue
        t = min_s if 0 < min_s <= median_s else median_s
        shapes.setdefault(key, {}).setdefault((template, config_hash), []).append(t)
    return shapes


def second(samples):
    s = sorted(samples)
    return s[1] if len(s) > 1 else s[0]


RULES = [("min", min), ("2nd", second), ("median", statistics.median)]


def pick(finalists, stat, tie):
    times = {k: stat(v) for k, v in finalists.items()}
    fastest = min(times.values())
    return min(k for k, t in times.items() if t - fastest <= tie * fastest)


def main(pairs):
    if not pairs or any(p.count(":") != 1 for p in pairs):
        sys.exit(__doc__)
    stores = [(load(a), load(b)) for a, b in (p.split(":") for p in pairs)]
    print("rule\ttie\t" + "\t".join(pairs))
    for name, stat in RULES:
        for tie in (0.02, 0.05):
            cells = []
            for a, b in stores:
                shared = [k for k in a if k in b]
                same = sum(pick(a[k], stat, tie) == pick(b[k], stat, tie) for k in shared)
                cells.append(f"{same}/{len(shared)}")
            print(f"{name}\t{tie:.0%}\t" + "\t".join(cells))


if __name__ == "__main__":
    main(sys.argv[1:])
