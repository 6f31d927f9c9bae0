#!/usr/bin/env bash
# The overhead of tracing, measured in one run against plain runc (issue 5). Bounded in time
# (about 6 minutes with the defaults), traffic only to the benchmark's own containers.
#
# For each runtime: nginx requests/s and latency under `ab` load (sent to the container's own
# network namespace, not through docker-proxy, which would cap both sides), a syscall-bound
# loop (`dd bs=1`) in a running container, container start time (`docker run --rm busybox
# true`), and the supervisor's CPU time and peak memory during the nginx load.
#
# Configurations: runc; floor (runtime ngram-ids-floor: the notify route answering CONTINUE
# and nothing else, the floor of this design); train, alert, enforce (notify); the same three
# with the ptrace tracer (label ngram-ids.tracer=ptrace); and floor-nosync / alert-nosync,
# without SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP (the "before" of that optimisation); alert-noargs,
# alert mode with `--arguments=off` (the cost of reading and judging arguments, issue 16);
# ebpf-train, train mode with the eBPF tracer (label ngram-ids.tracer=ebpf: the kernel counts);
# ebpf-alert, alert mode with the eBPF tracer (the kernel judges the call sequences);
# ebpf-enforce, enforce with the eBPF tracer through the seccomp hybrid (label
# ngram-ids.ebpf-enforce=hybrid: only the harmful calls are notified, decision 72).
# BENCH_ONLY="runc floor ..." limits the run to some configurations (runc is the reference).
# ngram-ids-floor is registered by this script in /etc/docker/daemon.json (runtimeArgs
# --bench-null-handler) and left there (it is harmless: it traces, learns nothing).
#
# Usage: bench/run.sh [--quick] [--out FILE]
#   --quick   5 s of load and 3 starts per runtime (for a smoke test)
#   --out     write the Markdown table to FILE too (default bench/results/<date>.md)
# Needs: root, a running dockerd with the ngram-ids runtimes (make install), ab (setup-host.sh).
# Env for a second dockerd (DOCKER_HOST set): BENCH_DAEMON_JSON (its daemon.json),
# BENCH_DOCKERD_PID (its pid, for the reload), BENCH_STATE_ROOT (the runtime's --root there,
# for the supervisors' pid files), NGRAM_IDS_BIN (the binary for profile and alerts commands).
set -euo pipefail

die() { echo "bench: error: $*" >&2; exit 1; }
log() { echo "bench: $*" >&2; }

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
load_s=20
starts=10
dd_count=200000
out=""
while (($#)); do
    case $1 in
        --quick) load_s=5; starts=3; dd_count=50000; shift ;;
        --out) [[ $# -ge 2 ]] || die "--out needs a file"; out=$2; shift 2 ;;
        -h|--help) sed -n '2,19p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
done
[[ $(id -u) -eq 0 ]] || die "must run as root"
ids=${NGRAM_IDS_BIN:-ngram-ids}
state_root=${BENCH_STATE_ROOT:-/var/run/docker/runtime-runc/moby}
for cmd in docker ab jq awk "$ids"; do
    command -v "$cmd" >/dev/null || die "$cmd is missing (make install; scripts/setup-host.sh)"
done
out=${out:-$repo/bench/results/$(date -u +%Y-%m-%dT%H%M%SZ).md}
mkdir -p "$(dirname "$out")"

# Register the floor runtime next to the others.
daemon_json=${BENCH_DAEMON_JSON:-/etc/docker/daemon.json}
bin=$(jq -r '.runtimes["ngram-ids"].path // empty' "$daemon_json" 2>/dev/null || true)
[[ -n $bin ]] || die "ngram-ids is not registered in $daemon_json (make install)"
if ! jq -e '.runtimes["ngram-ids-alert-noargs"]' "$daemon_json" >/dev/null 2>&1; then
    tmp=$(mktemp "$daemon_json.XXXXXX")
    jq --arg p "$bin" '.runtimes["ngram-ids-floor"] = {"path": $p, "runtimeArgs": ["--bench-null-handler"]}
        | .runtimes["ngram-ids-floor-nosync"] = {"path": $p, "runtimeArgs": ["--bench-null-handler", "--bench-no-sync-wake-up"]}
        | .runtimes["ngram-ids-alert-nosync"] = {"path": $p, "runtimeArgs": ["--bench-no-sync-wake-up"]}
        | .runtimes["ngram-ids-alert-noargs"] = {"path": $p, "runtimeArgs": ["--arguments=off"]}' \
        "$daemon_json" >"$tmp"
    chmod 0644 "$tmp"
    mv -f "$tmp" "$daemon_json"
    kill -HUP "${BENCH_DOCKERD_PID:-$(pidof dockerd)}"
    for _ in $(seq 30); do
        docker info --format '{{json .Runtimes}}' | jq -e 'has("ngram-ids-alert-nosync")' >/dev/null && break
        sleep 1
    done
fi
"$repo/scripts/build-images.sh" >&2

profile=bench-nginx-$$
bb_profile=bench-busybox-$$
names=()
cleanup() {
    for n in "${names[@]}"; do docker rm -f "$n" >/dev/null 2>&1 || true; done
    "$ids" profile rm "$profile" >/dev/null 2>&1 || true
    "$ids" profile rm "$bb_profile" >/dev/null 2>&1 || true
}
trap cleanup EXIT

# name -> "runtime [label...]"
runtimes=(runc floor-nosync floor train ebpf-train alert-nosync alert-noargs alert ebpf-alert enforce ebpf-enforce train-ptrace alert-ptrace enforce-ptrace)
declare -A how=(
    [runc]="runc" [floor]="ngram-ids-floor" [train]="ngram-ids-train" [alert]="ngram-ids"
    [floor-nosync]="ngram-ids-floor-nosync" [alert-nosync]="ngram-ids-alert-nosync"
    [alert-noargs]="ngram-ids-alert-noargs"
    [enforce]="ngram-ids-enforce"
    [ebpf-train]="ngram-ids-train ngram-ids.tracer=ebpf"
    [ebpf-alert]="ngram-ids ngram-ids.tracer=ebpf"
    [ebpf-enforce]="ngram-ids-enforce ngram-ids.tracer=ebpf ngram-ids.ebpf-enforce=hybrid"
    [train-ptrace]="ngram-ids-train ngram-ids.tracer=ptrace"
    [alert-ptrace]="ngram-ids ngram-ids.tracer=ptrace"
    [enforce-ptrace]="ngram-ids-enforce ngram-ids.tracer=ptrace"
)
# docker run options of a configuration
opts() {
    local rt labels l out
    read -r rt labels <<<"${how[$1]}"
    out="--runtime $rt"
    for l in $labels; do out+=" --label $l"; done
    echo "$out"
}
declare -A rps lat p99 failed ddt startt supcpu supmem

# Median of the numbers on stdin.
median() { sort -n | awk '{a[NR]=$1} END {if (NR == 0) print "nan"; else if (NR % 2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
now_ms() { date +%s%3N; }

supervisor_pid() {
    local id
    id=$(docker inspect -f '{{.Id}}' "$1")
    cat "$state_root/$id/supervisor.pid" 2>/dev/null || true
}
# utime+stime of a pid, in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }

run_nginx() {
    local rt=$1 name=bench-nginx-$$-$rt
    names+=("$name")
    # shellcheck disable=SC2046 # opts gives separate words on purpose
    docker run -d --name "$name" $(opts "$rt") --label "ngram-ids.profile=$profile" \
        ngram-nginx >/dev/null
    local ip
    ip=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$name")
    for _ in $(seq 100); do
        curl -fsS -o /dev/null "http://$ip/" 2>/dev/null && break
        sleep 0.1
    done
    ab -q -t 2 -c 4 "http://$ip/" >/dev/null 2>&1 || true # warm-up
    local sup t0 c0
    sup=$(supervisor_pid "$name")
    [[ -n $sup ]] && c0=$(cpu_ticks "$sup") || c0=0
    t0=$(now_ms)
    local res
    res=$(ab -q -t "$load_s" -n 100000000 -c 4 "http://$ip/" 2>&1 || true)
    local t1 c1
    t1=$(now_ms)
    rps[$rt]=$(awk '/^Requests per second/ {print $4}' <<<"$res")
    lat[$rt]=$(awk '/^Time per request/ && !/across/ {print $4; exit}' <<<"$res")
    p99[$rt]=$(awk '$1 == "99%" {print $2}' <<<"$res")
    failed[$rt]=$(awk '/^Failed requests/ {print $3}' <<<"$res")
    if [[ -n $sup ]]; then
        c1=$(cpu_ticks "$sup")
        supcpu[$rt]=$(awk -v c=$((c1 - c0)) -v ms=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" \
            'BEGIN {printf "%.0f", 100 * c / hz / (ms / 1000)}')
        supmem[$rt]=$(awk '/^VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$sup/status" 2>/dev/null || echo "?")
    else
        supcpu[$rt]="-"; supmem[$rt]="-"
    fi
    docker stop -t 5 "$name" >/dev/null
    docker rm "$name" >/dev/null
    log "$rt: nginx ${rps[$rt]} req/s, mean ${lat[$rt]} ms, p99 ${p99[$rt]} ms, failed ${failed[$rt]}, supervisor ${supcpu[$rt]}% CPU ${supmem[$rt]} MiB"
}

run_dd() {
    local rt=$1 name=bench-dd-$$-$rt
    names+=("$name")
    # shellcheck disable=SC2046
    docker run -d --name "$name" $(opts "$rt") --label "ngram-ids.profile=$bb_profile" \
        ngram-busybox sleep 600 >/dev/null
    local base=() i t0 t1
    for i in 1 2 3; do
        t0=$(now_ms); docker exec "$name" true; t1=$(now_ms); base+=($((t1 - t0)))
    done
    local b
    b=$(printf '%s\n' "${base[@]}" | median)
    t0=$(now_ms)
    docker exec "$name" dd if=/dev/zero of=/dev/null bs=1 count="$dd_count" 2>/dev/null
    t1=$(now_ms)
    ddt[$rt]=$(awk -v t=$((t1 - t0)) -v b="$b" 'BEGIN {printf "%.0f", t - b}')
    docker rm -f "$name" >/dev/null
    log "$rt: dd bs=1 count=$dd_count: ${ddt[$rt]} ms (exec overhead $b ms subtracted)"
}

run_start() {
    local rt=$1 i t0 t1 times=()
    for i in $(seq "$starts"); do
        t0=$(now_ms)
        # shellcheck disable=SC2046
        docker run --rm $(opts "$rt") --label "ngram-ids.profile=$bb_profile" ngram-busybox true
        t1=$(now_ms)
        times+=($((t1 - t0)))
    done
    startt[$rt]=$(printf '%s\n' "${times[@]}" | median)
    log "$rt: docker run --rm busybox true: median ${startt[$rt]} ms over $starts"
}

started=$SECONDS
# Train first so that alert and enforce have profiles (the train run's figures count too).
# Only these configurations, when BENCH_ONLY lists some (e.g. "runc floor-nosync floor").
wanted() { [[ -z ${BENCH_ONLY:-} || " $BENCH_ONLY " == *" $1 "* ]]; }
# A scoring configuration brings what it needs: the profiles the train configuration makes
# (trained here, not reported, when BENCH_ONLY leaves train out).
needs_profile=0
for rt in alert-nosync alert-noargs alert ebpf-alert enforce ebpf-enforce alert-ptrace enforce-ptrace; do
    wanted "$rt" && needs_profile=1
done
for rt in runc floor-nosync floor train ebpf-train; do
    if wanted "$rt"; then
        run_nginx "$rt"; run_start "$rt"; run_dd "$rt"
    elif [[ $rt == train && $needs_profile == 1 ]]; then
        log "training the profiles the scoring configurations need (not reported)"
        run_nginx train; run_dd train
    fi
done
# Wait for the training flushes, then measure the scoring modes.
for _ in $(seq 60); do
    "$ids" profile show "$profile" >/dev/null 2>&1 && "$ids" profile show "$bb_profile" >/dev/null 2>&1 && break
    sleep 0.5
done
for rt in alert-nosync alert-noargs alert ebpf-alert enforce ebpf-enforce train-ptrace alert-ptrace enforce-ptrace; do
    wanted "$rt" || continue
    run_nginx "$rt"; run_start "$rt"; run_dd "$rt"
done
alerts=$("$ids" alerts --json 2>/dev/null | grep -c "$profile" || true)

ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b == 0 || a == "" || b == "") print "-"; else printf "%.2f", a / b}'; }
{
    echo "### Benchmark $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo
    echo "Machine: $(nproc) CPUs ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), kernel $(uname -r), $(docker version --format 'dockerd {{.Server.Version}}'), ngram-ids $("$ids" --version | awk '{print $2}')."
    echo "Load: ab -c 4 for ${load_s} s against nginx in its own network namespace; dd bs=1 count=$dd_count via docker exec; $starts starts per runtime. Ratios are against runc in this same run."
    echo
    echo "| runtime | nginx req/s | ratio | mean ms | p99 ms | failed | dd ms | ratio | start ms | +ms | supervisor CPU % | supervisor peak MiB |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
    for rt in "${runtimes[@]}"; do
        wanted "$rt" || continue
        echo "| $rt | ${rps[$rt]} | $(ratio "${rps[$rt]}" "${rps[runc]}") | ${lat[$rt]} | ${p99[$rt]} | ${failed[$rt]} | ${ddt[$rt]} | $(ratio "${ddt[$rt]}" "${ddt[runc]}") | ${startt[$rt]} | $(awk -v a="${startt[$rt]}" -v b="${startt[runc]}" 'BEGIN {printf "%+.0f", a - b}') | ${supcpu[$rt]} | ${supmem[$rt]} |"
    done
    echo
    # Configurations left out by BENCH_ONLY have no figures: "-".
    r() { local -n m=$1; echo "${m[$2]:-}"; }
    echo "Against the floor (notify, CONTINUE only): alert $(ratio "$(r rps alert)" "$(r rps floor)"), train $(ratio "$(r rps train)" "$(r rps floor)") of its requests/s; dd: alert $(ratio "$(r ddt floor)" "$(r ddt alert)"), train $(ratio "$(r ddt floor)" "$(r ddt train)") of its speed. ebpf-train against train (notify): $(ratio "$(r rps ebpf-train)" "$(r rps train)") of its requests/s, $(ratio "$(r ddt train)" "$(r ddt ebpf-train)") of its dd speed. ebpf-alert against alert (notify): $(ratio "$(r rps ebpf-alert)" "$(r rps alert)") of its requests/s, $(ratio "$(r ddt alert)" "$(r ddt ebpf-alert)") of its dd speed. ebpf-enforce (seccomp hybrid) against enforce (notify): $(ratio "$(r rps ebpf-enforce)" "$(r rps enforce)") of its requests/s, $(ratio "$(r ddt enforce)" "$(r ddt ebpf-enforce)") of its dd speed. Alerts written during the run: $alerts. Duration: $((SECONDS - started)) s."
} | tee "$out"
log "results in $out"
