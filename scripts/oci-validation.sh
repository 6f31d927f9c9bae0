#!/usr/bin/env bash
# The OCI runtime-tools validation suite against runc and against ngram-ids, and the
# differential: files and assertions passing for each runtime, and every assertion that passes
# under runc but not under ngram-ids. Not part of CI (needs root, Go and a runtime-tools tree).
#
#   scripts/oci-validation.sh SRC_DIR [OUT_DIR]
#
# SRC_DIR: a source tree of github.com/opencontainers/runtime-tools (with its vendor/ directory
# and rootfs-amd64.tar.gz); this script fetches nothing. The validation programs and
# `runtimetest` are built into SRC_DIR with Go 1.23 (Debian bookworm-backports:
# `apt-get install -t bookworm-backports golang-1.23-go`), offline from the vendored modules.
# Each program (validation/*/*.go, as `make localvalidation` runs them) is run from SRC_DIR with
# RUNTIME set to a wrapper that gives the runtime a private --root (and ngram-ids a private
# profile store and alert log, in train mode), one at a time, with a timeout.
#
# Environment: GO (default /usr/lib/go-1.23/bin/go), RUNC (default: runc on PATH), NGRAM_IDS
# (default target/release/ngram-ids of this checkout, or $CARGO_TARGET_DIR's), TIMEOUT
# (seconds per program, default 120), ONLY (a regular expression: run only the matching
# programs), NGRAM_IDS_WRAPPER (a script to run instead of the generated ngram-ids wrapper),
# REPORT_ONLY=1 (print the differential of the results already in OUT_DIR).
set -euo pipefail

usage() { echo "usage: $0 SRC_DIR [OUT_DIR]" >&2; exit 2; }
[ $# -ge 1 ] && [ $# -le 2 ] || usage
SRC=$(realpath "$1")
HERE=$(cd "$(dirname "$0")/.." && pwd)
OUT=$(realpath -m "${2:-$HERE/target-oci/oci-validation}")
GO=${GO:-/usr/lib/go-1.23/bin/go}
RUNC=${RUNC:-$(command -v runc || true)}
NGRAM_IDS=${NGRAM_IDS:-${CARGO_TARGET_DIR:-$HERE/target}/release/ngram-ids}
TIMEOUT=${TIMEOUT:-120}
ONLY=${ONLY:-.}

die() { echo "oci-validation: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (the validation programs create containers)"
[ -f "$SRC/go.mod" ] && grep -q 'opencontainers/runtime-tools' "$SRC/go.mod" \
  || die "$SRC is not a runtime-tools source tree"
[ -d "$SRC/vendor" ] || die "$SRC has no vendor/ directory (the build is offline)"
[ -f "$SRC/rootfs-amd64.tar.gz" ] || die "$SRC has no rootfs-amd64.tar.gz"
[ -x "$GO" ] || die "no Go at $GO (apt-get install -t bookworm-backports golang-1.23-go)"
[ -n "$RUNC" ] && [ -x "$RUNC" ] || die "no runc (set RUNC=...)"
[ -x "$NGRAM_IDS" ] || die "no ngram-ids binary at $NGRAM_IDS (set NGRAM_IDS=...)"
NGRAM_IDS=$(realpath "$NGRAM_IDS")

if [ "${REPORT_ONLY:-0}" != 1 ]; then
# --- build, offline -------------------------------------------------------------------------
export GOFLAGS=-mod=vendor GOPROXY=off GOTOOLCHAIN=local CGO_ENABLED=0
export GOCACHE=${GOCACHE:-$OUT/go-cache} GOPATH=${GOPATH:-$OUT/go-path}
mkdir -p "$OUT"
cd "$SRC"
mapfile -t PROGRAMS < <(find validation -name '*.go' -not -path '*/util/*' | sort | grep -E -- "$ONLY")
[ ${#PROGRAMS[@]} -gt 0 ] || die "no validation programs under $SRC/validation matching $ONLY"
echo "building runtimetest and ${#PROGRAMS[@]} validation programs with $("$GO" version)" >&2
"$GO" build -tags "netgo osusergo" -o runtimetest ./cmd/runtimetest
for p in "${PROGRAMS[@]}"; do
  "$GO" build -o "${p%.go}.t" "./$p"
done

# --- run ------------------------------------------------------------------------------------
WRAP=$OUT/wrappers
mkdir -p "$WRAP"
cat >"$WRAP/runc" <<EOF
#!/bin/sh
exec "$RUNC" --root "$OUT/state-runc" "\$@"
EOF
# The suite's bundles name no image and no profile: --default-profile gives them one.
cat >"$WRAP/ngram-ids" <<EOF
#!/bin/sh
exec "$NGRAM_IDS" --root "$OUT/state-ngram-ids" --store "$OUT/store" \
  --alerts "$OUT/alerts.jsonl" --mode=train --default-profile=oci-validation "\$@"
EOF
chmod 0755 "$WRAP/runc" "$WRAP/ngram-ids"
# NGRAM_IDS_WRAPPER: run ngram-ids through this script instead (e.g. an older binary).
[ -z "${NGRAM_IDS_WRAPPER:-}" ] || cp "$NGRAM_IDS_WRAPPER" "$WRAP/ngram-ids"

for rt in runc ngram-ids; do
  rm -rf "${OUT:?}/$rt"
  mkdir -p "$OUT/$rt"
  for p in "${PROGRAMS[@]}"; do
    name=$(basename "${p%.go}")
    start=$SECONDS
    set +e
    RUNTIME="$WRAP/$rt" timeout --kill-after=10 "$TIMEOUT" "./${p%.go}.t" \
      >"$OUT/$rt/$name.tap" 2>"$OUT/$rt/$name.stderr" </dev/null
    code=$?
    set -e
    echo "$name $code $((SECONDS - start))" >>"$OUT/$rt/exit-codes"
    printf '%-10s %-40s exit %s\n' "$rt" "$name" "$code" >&2
  done
done

fi

# --- the differential -----------------------------------------------------------------------
python3 - "$OUT" <<'PY'
import re, sys
from pathlib import Path

out = Path(sys.argv[1])
LINE = re.compile(r'^(not ok|ok)\b\s*(\d+)?\s*(?:-\s*)?(.*)$')

def parse(rt):
    """file -> (exit code, passed?, {assertion: ok?}) for one runtime."""
    codes = {}
    for l in (out / rt / "exit-codes").read_text().splitlines():
        name, code, _secs = l.split()
        codes[name] = int(code)
    files = {}
    for name, code in codes.items():
        asserts, seen = {}, {}
        lines = (out / rt / f"{name}.tap").read_text(errors="replace").splitlines()
        after_test, i = False, 0
        while i < len(lines):
            l = lines[i]
            i += 1
            if l == "  ---":
                # A YAML block that follows no test line is a failure some programs report
                # only this way (poststart_fail, poststop_fail, hooks): count it as one.
                block = []
                while i < len(lines) and lines[i] != "  ...":
                    block.append(lines[i])
                    i += 1
                i += 1
                if not after_test:
                    m = re.search(r'"error":\s*"((?:[^"\\]|\\.)*)"', "\n".join(block))
                    if m:
                        first = m.group(1).encode().decode("unicode_escape").splitlines()[0]
                        asserts[f"(diagnostic) {first}"] = False
                continue
            m = LINE.match(l)
            after_test = bool(m)
            if not m:
                continue
            desc = m.group(3).strip()
            skip = re.search(r'#\s*skip', desc, re.I) is not None
            desc = re.sub(r'\s*#\s*(skip|todo).*$', '', desc, flags=re.I) or "(unnamed)"
            # The same description may repeat in one file: number the repeats.
            n = seen.get(desc, 0) + 1
            seen[desc] = n
            key = desc if n == 1 else f"{desc} [{n}]"
            asserts[key] = "skip" if skip else (m.group(1) == "ok")
        # As a TAP harness counts it: exit 0 and no "not ok" (a program that expects create
        # to fail prints nothing and exits 0 when it does).
        failed = any(v is False for v in asserts.values())
        passed = code == 0 and not failed
        files[name] = (code, passed, asserts)
    return files

runc, ours = parse("runc"), parse("ngram-ids")

def count(files):
    f = sum(1 for _c, p, _a in files.values() if p)
    a = sum(1 for _c, _p, asserts in files.values() for v in asserts.values() if v is True)
    t = sum(1 for _c, _p, asserts in files.values() for v in asserts.values() if v != "skip")
    return f, len(files), a, t

print()
print("| runtime | files passing | assertions passing (of those run, skips excluded) |")
print("| --- | --- | --- |")
for label, files in (("runc", runc), ("ngram-ids", ours)):
    f, n, a, t = count(files)
    print(f"| {label} | {f} of {n} | {a} of {t} |")

print()
print("Files passing under runc but not under ngram-ids:")
only = [n for n in sorted(runc) if runc[n][1] and not ours.get(n, (0, False, {}))[1]]
print("\n".join(f"- {n} (exit {ours[n][0] if n in ours else '-'})" for n in only) or "- none")
print()
print("Files passing under ngram-ids but not under runc:")
better = [n for n in sorted(ours) if ours[n][1] and not runc.get(n, (0, False, {}))[1]]
print("\n".join(f"- {n}" for n in better) or "- none")
print()
print("Assertions passing under runc but not under ngram-ids:")
any_diff = False
for n in sorted(runc):
    theirs_file = ours.get(n, (None, False, {}))
    diff = []
    for desc, ok in runc[n][2].items():
        theirs = theirs_file[2].get(desc)
        if ok is True and theirs is not True:
            how = "missing" if theirs is None else "skipped" if theirs == "skip" else "not ok"
            diff.append(f"  - {desc} ({how})")
    if diff:
        any_diff = True
        verdict = lambda f: f"{'passes' if f[1] else 'fails'}, exit {f[0]}"
        print(f"- {n} (runc: file {verdict(runc[n])}; ngram-ids: file {verdict(theirs_file)}): "
              f"{len(diff)} assertions")
        print("\n".join(diff))
if not any_diff:
    print("- none")
PY
echo >&2
echo "TAP output and stderr of each program: $OUT/{runc,ngram-ids}/" >&2
