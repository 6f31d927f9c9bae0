#!/usr/bin/env bash
# Run the end-to-end suite (tests/e2e) against the real dockerd.
# Prepares the host (setup-host.sh --test: the suites use its test packages) and the images
# (build-images.sh) first. With the ngram-ids runtime (the default) the binary must already be
# built and registered:
#   cargo build --release -p ngram-ids && scripts/register.sh
#
# Usage: scripts/test-e2e.sh [--runtime ngram-ids|ngram-ids-train|ngram-ids-enforce|runc]
#                            [--tracer notify|ptrace] [--suite FILE] [TEST-FILTER...]
#   --tracer  label every ngram-ids container with ngram-ids.tracer=T (default: the runtime's,
#             notify); --suite runs one test file only (e.g. `--suite ids`).
#   --runtime runc checks the suite itself against Docker's default runtime. The IDS tests
#   (tests/e2e/tests/ids.rs) run with any ngram-ids* runtime and pick the three registrations
#   themselves; they are skipped with runc.
#   TEST-FILTER... is passed to the test binaries (e.g. `pause` or `--exact run::run_exit_code`).
# Env:   CARGO_TARGET_DIR is honoured.
set -euo pipefail

die() { echo "test-e2e: error: $*" >&2; exit 1; }
log() { echo "test-e2e: $*" >&2; }

runtime=ngram-ids
filters=()
suite=()
tracer=""
while (($#)); do
    case $1 in
        --runtime) [[ $# -ge 2 ]] || die "--runtime needs a value (ngram-ids, ngram-ids-train, ngram-ids-enforce or runc)"; runtime=$2; shift 2 ;;
        --runtime=*) runtime=${1#--runtime=}; shift ;;
        --tracer) [[ $# -ge 2 ]] || die "--tracer needs a value (notify or ptrace)"; tracer=$2; shift 2 ;;
        --suite) [[ $# -ge 2 ]] || die "--suite needs a test file name (e.g. ids)"; suite=(--test "$2"); shift 2 ;;
        -h|--help) sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        --) shift; filters+=("$@"); break ;;
        *) filters+=("$1"); shift ;;
    esac
done
case $runtime in
    ngram-ids|ngram-ids-train|ngram-ids-enforce|runc) ;;
    *) die "unknown runtime '$runtime' (ngram-ids, ngram-ids-train, ngram-ids-enforce or runc)" ;;
esac

[[ $(id -u) -eq 0 ]] || die "must run as root (the suite drives dockerd)"
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

"$repo/scripts/setup-host.sh" --test
"$repo/scripts/build-images.sh"

runtimes=$(docker info --format '{{json .Runtimes}}')
jq -e --arg r "$runtime" 'has($r)' <<<"$runtimes" >/dev/null \
    || die "dockerd has no runtime '$runtime' (build it and run scripts/register.sh); it has: $(jq -c keys <<<"$runtimes")"
if [[ $runtime != runc ]]; then
    path=$(jq -r --arg r "$runtime" '.[$r].path' <<<"$runtimes")
    [[ -x $path ]] || die "runtime '$runtime' points to $path, which is not executable (run scripts/register.sh)"
fi

# Containers left by an earlier run that was killed (the tests remove their own).
stale=$(docker ps --all --quiet --filter label=ngram-ids.e2e=1)
if [[ -n $stale ]]; then
    log "removing $(wc -l <<<"$stale") containers left by an earlier run"
    # shellcheck disable=SC2086 # one id per word
    docker rm --force --volumes $stale >/dev/null || true
fi

# Runtime state directories and cgroups of containers dockerd no longer knows. Containers of
# another dockerd on the host (a live evaluation's, with its own containerd) are not ours: their
# shims name another containerd socket.
orphans() {
    local known path id
    known=$(docker ps --all --quiet --no-trunc
        ps -eo args | awk '$1 ~ /containerd-shim/ && !/-address \/run\/docker\/containerd\/containerd.sock/ {
            for (i = 1; i < NF; i++) if ($i == "-id") print $(i + 1) }')
    for path in /var/run/docker/runtime-*/moby/* /sys/fs/cgroup/*/docker/* /sys/fs/cgroup/docker/*; do
        id=${path##*/}
        [[ $id =~ ^[0-9a-f]{64}$ ]] || continue
        grep -qx "$id" <<<"$known" || echo "$path"
    done | sort -u
}
orphans_before=$(orphans)

log "running the suite with --runtime=$runtime"
start=$SECONDS
cd "$repo"
status=0
NGRAM_IDS_E2E=1 NGRAM_IDS_E2E_RUNTIME=$runtime NGRAM_IDS_E2E_TRACER=$tracer \
    cargo test --release --no-fail-fast -p ngram-e2e "${suite[@]}" -- --test-threads=1 "${filters[@]}" || status=$?
log "suite finished in $((SECONDS - start))s with status $status (runtime $runtime${tracer:+, tracer $tracer})"

sleep 1
leaked=$(comm -13 <(echo "$orphans_before") <(orphans) | sed '/^$/d')
if [[ -n $leaked ]]; then
    echo "test-e2e: error: the run left runtime state or cgroups of removed containers:" >&2
    while IFS= read -r path; do echo "  $path"; done <<<"$leaked" >&2
    ((status != 0)) || status=1
fi
exit "$status"
