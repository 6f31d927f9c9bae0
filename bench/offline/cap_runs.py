#!/usr/bin/env python3
"""Copy an ADFA-LD tree with every run of one call capped at CAP repetitions (decision 71).

usage: bench/offline/cap_runs.py SRC/ADFA-LD DST/ADFA-LD CAP [CALLS]

CALLS (comma-separated ADFA-LD call numbers, e.g. 3,4,145,146,180,181 for the read/write family)
caps only the runs of those calls and keeps every other run whole. Then `ngram-ids eval --format adfa ... --runs keep` in DST measures the n-gram model with runs
capped instead of kept or collapsed (docs/evaluation.md).
"""
import os
import shutil
import sys


def capped(tokens, cap, only=None):
    out, prev, run = [], None, 0
    for t in tokens:
        run = run + 1 if t == prev else 1
        prev = t
        if run <= cap or (only is not None and t not in only):
            out.append(t)
    return out


def main():
    if len(sys.argv) not in (4, 5) or not sys.argv[3].isdigit() or int(sys.argv[3]) < 1:
        sys.exit("usage: cap_runs.py SRC DST CAP [CALLS] (CAP a whole number >= 1, CALLS e.g. 3,4)")
    src, dst, cap = sys.argv[1], sys.argv[2], int(sys.argv[3])
    only = set(sys.argv[4].split(",")) if len(sys.argv) == 5 else None
    if not os.path.isdir(os.path.join(src, "Training_Data_Master")):
        sys.exit("cap_runs.py: %s has no Training_Data_Master: give the ADFA-LD directory" % src)
    for root, _, files in os.walk(src):
        rel = os.path.relpath(root, src)
        os.makedirs(os.path.join(dst, rel), exist_ok=True)
        for f in files:
            s, d = os.path.join(root, f), os.path.join(dst, rel, f)
            if not f.endswith(".txt") or "Syscall+List" in f:
                shutil.copy(s, d)
                continue
            with open(s) as fh:
                toks = fh.read().split()
            with open(d, "w") as fh:
                fh.write(" ".join(capped(toks, cap, only)) + "\n")


if __name__ == "__main__":
    main()
