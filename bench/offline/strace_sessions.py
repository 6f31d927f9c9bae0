#!/usr/bin/env python3
"""Split an `strace -f -o` trace of a forking daemon into one trace per connection: the process
the daemon forked after its n-th accept() (one SMTP connection for exim) with all of its
descendants, each line kept as strace wrote it. The daemon's own lines (its accept loop) and its
other children (start-up helpers) are dropped.

    strace_sessions.py RAW.strace MANIFEST.tsv OUT

MANIFEST.tsv has one line per child in fork order: `index  label  family` (label normal,
attack or probe). Normal sessions go to OUT/train (the first 40 % of them) and OUT/normal, attack
sessions to OUT/attack/FAMILY_1/, probes nowhere; file names are sNNNN.strace.
"""
import collections
import os
import re
import sys

# A fork's result: `clone(...) = 123`, `clone3(...) = 123`, `fork() = 123`, `vfork() = 123`,
# also when strace printed it as `<... clone resumed>... = 123`.
FORK = re.compile(r"^(\d+) +\S+ +(?:<\.\.\. )?(?:clone3?|v?fork)\b.*= (\d+)(?: <[^>]*>)?$")
PID = re.compile(r"^(\d+) ")
ACCEPT = re.compile(r" accept4?\(.*\) = \d+$")


def main():
    raw, manifest, out = sys.argv[1:4]
    parent = {}
    daemon = None
    accepted = False
    sessions = []
    with open(raw, errors="replace") as f:
        for line in f:
            m = PID.match(line)
            if not m:
                continue
            pid = int(m.group(1))
            if daemon is None:
                daemon = pid
            if pid == daemon and ACCEPT.search(line):
                accepted = True
            fm = FORK.match(line.rstrip("\n"))
            if fm and int(fm.group(2)) > 0:
                child = int(fm.group(2))
                parent[child] = pid
                if pid == daemon and accepted:
                    sessions.append(child)
                    accepted = False

    roots = {}

    def root(pid):
        if pid not in roots:
            p = pid
            while p in parent and parent[p] != daemon:
                p = parent[p]
            roots[pid] = p if parent.get(p) == daemon else None
        return roots[pid]

    plan = [l.rstrip("\n").split("\t") for l in open(manifest) if l.strip()]
    if len(sessions) != len(plan):
        sys.exit(f"strace_sessions.py: the daemon forked {len(sessions)} children after accept() but "
                 f"{manifest} lists {len(plan)} sessions; record again")
    normal = [i for i, p in enumerate(plan) if p[1] == "normal"]
    train = set(normal[: int(len(normal) * 0.4)])
    dest = {}
    for i, (child, p) in enumerate(zip(sessions, plan)):
        if p[1] == "normal":
            d = os.path.join(out, "train" if i in train else "normal")
        elif p[1] == "attack":
            d = os.path.join(out, "attack", f"{p[2]}_1")
        else:
            continue
        os.makedirs(d, exist_ok=True)
        dest[child] = os.path.join(d, f"s{i:04d}.strace")
    files = {}
    with open(raw, errors="replace") as f:
        for line in f:
            m = PID.match(line)
            if not m:
                continue
            r = root(int(m.group(1)))
            if r not in dest:
                continue
            if r not in files:
                files[r] = open(dest[r], "w")
            files[r].write(line)
    for fh in files.values():
        fh.close()
    counts = collections.Counter(os.path.dirname(p) for p in dest.values())
    for d, n in sorted(counts.items()):
        print(f"{d}: {n} traces")


if __name__ == "__main__":
    main()
