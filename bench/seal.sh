#!/usr/bin/env bash
# Cost of one runtime call that must run from a protected binary (CVE-2019-5736, decisions 105
# and 110), against runc in the same rounds: each round times once per configuration, in an
# order that rotates from round to round (a shared machine's load weighs on all alike).
#
#   runc      `runc --root DIR state x`: runc parses, finds no container, exits (no clone)
#   plain     `ngram-ids --root DIR state x`: the same without any protection (decision 105)
#   overlay   `ngram-ids --root DIR exec --process /dev/null x`: re-executes from a private
#             read-only overlay of its binary, then finds no container (--seal=auto)
#   copy      the same with --seal=copy: the sealed memfd copy, then the re-execution
#
# Reported per configuration: the median, quartiles and extremes, and the median of the paired
# differences to runc in the same round.
#
# Usage: bench/seal.sh [--rounds N] [--out FILE] [NGRAM_IDS_BINARY]
#   default binary: ngram-ids on PATH; default rounds 60.
# Needs: root (the overlay route needs CAP_SYS_ADMIN), runc.
set -euo pipefail
# shellcheck source=bench/quartiles.sh
. "$(dirname "${BASH_SOURCE[0]}")/quartiles.sh"

die() { echo "seal-bench: error: $*" >&2; exit 1; }

rounds=60
out=""
bench_options '2,18p' "$@"
((${#positional[@]} <= 1)) || die "one binary only (got: ${positional[*]})"
bin=${positional[0]:-}
[[ $(id -u) -eq 0 ]] || die "must run as root"
bin=${bin:-$(command -v ngram-ids || true)}
[[ -x $bin ]] || die "no ngram-ids binary (give its path)"
command -v runc >/dev/null || die "runc is missing"

state=$(mktemp -d)
trap 'rm -rf "$state"' EXIT
declare -A cmd=(
    [runc]="runc --root $state/runc state x"
    [plain]="$bin --root $state/ids state x"
    [overlay]="$bin --root $state/ids --seal=auto exec --process /dev/null x"
    [copy]="$bin --root $state/ids --seal=copy exec --process /dev/null x"
)
configs=(runc plain overlay copy)
# The overlay route must really be taken here, or the figures would be the copy's twice.
said=$("$bin" --root "$state/ids" --debug exec --process /dev/null x 2>&1 || true)
[[ $said == *route=overlay* ]] ||
    die "$bin does not take the overlay route here (not root? no overlayfs?): $said"

now_us() { local t; t=$(date +%s%N); echo $((t / 1000)); }
declare -A times diffs
n=${#configs[@]}
for ((r = 0; r < rounds; r++)); do
    declare -A this=()
    for ((k = 0; k < n; k++)); do
        c=${configs[$(((k + r) % n))]}
        t0=$(now_us)
        # shellcheck disable=SC2086 # the command line is split on purpose
        ${cmd[$c]} >/dev/null 2>&1 || true
        t1=$(now_us)
        this[$c]=$((t1 - t0))
        times[$c]+="$((t1 - t0)) "
    done
    for c in "${configs[@]}"; do diffs[$c]+="$((this[$c] - this[runc])) "; done
done

{
    echo "### Protected runtime call $(date -u +%Y-%m-%dT%H:%M:%SZ): $rounds rounds, $(basename "$bin") ($(stat -c %s "$bin") bytes)"
    echo
    echo "Machine: $(nproc) CPUs, kernel $(uname -r), load average $(cut -d' ' -f1-3 /proc/loadavg) at the end."
    echo
    quartile_rows 1000 %.1f
} | tee ${out:+"$out"}
