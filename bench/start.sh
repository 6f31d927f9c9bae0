#!/usr/bin/env bash
# Container start time against runc, in rounds (issue 10's "+50 ms of runc" target): each round
# times `docker run --rm busybox true` once per configuration, in an order that rotates from
# round to round, so that a machine whose load moves (a shared host) weighs on every
# configuration alike. Reported per configuration: the median, the spread (min, quartiles, max)
# and the median of the paired differences to runc's start in the same round.
#
# Configurations (same names as bench/run.sh): runc, floor, train, alert, enforce (notify),
# ebpf-train, ebpf-alert, ebpf-enforce (the seccomp hybrid). The busybox profile the scoring
# configurations need is trained first by a few ebpf training runs (not reported).
#
# Usage: bench/start.sh [--rounds N] [--out FILE] [CONFIGURATION[@PREFIX]...]
#   --rounds  rounds (default 15)
#   --out     write the Markdown table to FILE too
#   default configurations: runc ebpf-train ebpf-alert ebpf-enforce alert
#   CONFIGURATION@PREFIX: the configuration's labels with runtime PREFIXngram-ids... (another
#   build registered beside the first, e.g. ebpf-alert@b- runs b-ngram-ids: before/after).
# Needs: root, a dockerd with the ngram-ids runtimes (DOCKER_HOST for a second one).
# Env: NGRAM_IDS_BIN (the binary for the profile commands; default ngram-ids),
#      BENCH_STORE (its --store; default /var/lib/ngram-ids).
set -euo pipefail
# shellcheck source=bench/quartiles.sh
. "$(dirname "${BASH_SOURCE[0]}")/quartiles.sh"

die() { echo "start-bench: error: $*" >&2; exit 1; }
log() { echo "start-bench: $*" >&2; }

rounds=15
out=""
bench_options '2,19p' "$@"
configs=("${positional[@]}")
((${#configs[@]})) || configs=(runc ebpf-train ebpf-alert ebpf-enforce alert)
[[ " ${configs[*]} " == *" runc "* ]] || configs=(runc "${configs[@]}")
[[ $(id -u) -eq 0 ]] || die "must run as root"
ids=${NGRAM_IDS_BIN:-ngram-ids}
store=${BENCH_STORE:-/var/lib/ngram-ids}
for cmd in docker awk "$ids"; do
    command -v "$cmd" >/dev/null || die "$cmd is missing"
done

declare -A how=(
    [runc]="runc" [floor]="ngram-ids-floor" [train]="ngram-ids-train" [alert]="ngram-ids"
    [enforce]="ngram-ids-enforce"
    [ebpf-train]="ngram-ids-train ngram-ids.tracer=ebpf"
    [ebpf-alert]="ngram-ids ngram-ids.tracer=ebpf"
    [ebpf-enforce]="ngram-ids-enforce ngram-ids.tracer=ebpf ngram-ids.ebpf-enforce=hybrid"
)
for c in "${configs[@]}"; do
    if [[ $c == *@* ]]; then
        base=${c%@*}
        [[ -n ${how[$base]:-} && $base != runc ]] || die "unknown configuration '$base' in '$c'"
        how[$c]="${c#*@}${how[$base]}"
    fi
    [[ -n ${how[$c]:-} ]] || die "unknown configuration '$c' (runc floor train alert enforce ebpf-train ebpf-alert ebpf-enforce)"
done
opts() {
    local rt labels l o
    read -r rt labels <<<"${how[$1]}"
    o="--runtime $rt"
    for l in $labels; do o+=" --label $l"; done
    echo "$o"
}

profile=bench-start-$$
trap '"$ids" profile rm --db "$store" "$profile" >/dev/null 2>&1 || true' EXIT
log "training profile $profile (3 ebpf runs)"
for _ in 1 2 3; do
    docker run --rm --runtime ngram-ids-train --label ngram-ids.tracer=ebpf \
        --label "ngram-ids.profile=$profile" ngram-busybox sh -c 'ls / >/dev/null; true'
done
now_ms() { date +%s%3N; }
declare -A times diffs
n=${#configs[@]}
for ((r = 0; r < rounds; r++)); do
    declare -A this=()
    for ((k = 0; k < n; k++)); do
        c=${configs[$(((k + r) % n))]}
        t0=$(now_ms)
        # shellcheck disable=SC2046 # opts gives separate words on purpose
        docker run --rm $(opts "$c") --label "ngram-ids.profile=$profile" ngram-busybox true
        t1=$(now_ms)
        this[$c]=$((t1 - t0))
        times[$c]+="$((t1 - t0)) "
    done
    for c in "${configs[@]}"; do diffs[$c]+="$((this[$c] - this[runc])) "; done
    log "round $((r + 1))/$rounds: $(for c in "${configs[@]}"; do printf '%s %s ' "$c" "${this[$c]}"; done)(load $(cut -d' ' -f1 /proc/loadavg))"
done

{
    echo "### Start time $(date -u +%Y-%m-%dT%H:%M:%SZ): \`docker run --rm ngram-busybox true\`, $rounds rounds"
    echo
    echo "Machine: $(nproc) CPUs, kernel $(uname -r), load average $(cut -d' ' -f1-3 /proc/loadavg) at the end."
    echo
    quartile_rows 1 %d
} | tee ${out:+"$out"}
