#!/usr/bin/env bash
# Record the command lines dockerd (through containerd-shim-runc-v2) sends to an OCI runtime:
# registers a wrapper runtime `argv-runc` that appends its argv to a log and runs runc,
# drives Docker through the behaviours the runtime must support, then unregisters the wrapper
# and prints the log (one command line per line, argv[0] dropped), ready to replace
# runtime/tests/data/dockerd-argv.txt, whose every line is a parse test
# (runtime/tests/cli_parse.rs).
#
# Usage: scripts/record-dockerd-argv.sh [OUT]   (default: standard output)
# Needs: root, a running dockerd (scripts/setup-host.sh) and the image ngram-busybox
#        (scripts/build-images.sh).
set -euo pipefail

die() { echo "record-dockerd-argv: error: $*" >&2; exit 1; }
log() { echo "record-dockerd-argv: $*" >&2; }

[[ $(id -u) -eq 0 ]] || die "must run as root (it registers a runtime with dockerd)"
command -v jq >/dev/null || die "jq is missing (run scripts/setup-host.sh)"
docker image inspect ngram-busybox >/dev/null 2>&1 \
    || die "image ngram-busybox is missing (run scripts/build-images.sh)"
runc=$(command -v runc) || die "runc is missing (apt-get install runc)"

daemon_json=/etc/docker/daemon.json
work=$(mktemp -d /root/.ngram-argv.XXXXXX) # root-only: the wrapper runs as root
chmod 0700 "$work"
argv_log=$work/argv.log
wrapper=$work/argv-runc
backup=$work/daemon.json.orig

cat >"$wrapper" <<EOF
#!/bin/sh
printf '%s\n' "\$*" >>'$argv_log'
exec '$runc' "\$@"
EOF
chmod 0700 "$wrapper"

reload() {
    kill -HUP "$(pidof dockerd)"
    for _ in $(seq 50); do
        if docker info --format '{{json .Runtimes}}' | jq -e "$1" >/dev/null; then return 0; fi
        sleep 0.2
    done
    die "dockerd did not pick up the runtimes ($1)"
}

restore() {
    set +e
    docker ps -aq --filter label=ngram-ids.argv=1 | xargs -r docker rm -f >/dev/null
    if [[ -f $backup ]]; then cp "$backup" "$daemon_json"; else rm -f "$daemon_json"; fi
    kill -HUP "$(pidof dockerd)"
    rm -rf "$work"
}
trap restore EXIT

[[ -f $daemon_json ]] && cp "$daemon_json" "$backup"
current=$(cat "$daemon_json" 2>/dev/null || echo '{}')
jq --arg p "$wrapper" '.runtimes["argv-runc"] = {path: $p}' <<<"$current" >"$daemon_json"
reload 'has("argv-runc")'

r=(--runtime argv-runc --label ngram-ids.argv=1)
img=ngram-busybox
log "driving dockerd through run, exec, signals, pause, update, stop, restart, --pid=host"
docker run --rm "${r[@]}" "$img" true
docker run --rm "${r[@]}" "$img" sh -c 'exit 3' || true
docker run --rm -t "${r[@]}" "$img" true >/dev/null
docker run --rm "${r[@]}" "$img" no-such-binary 2>/dev/null || true
c=$(docker run -d "${r[@]}" "$img" sh -c 'trap : USR1 37 40 64; while :; do sleep 0.2; done')
docker exec "$c" true
docker exec -t "$c" true >/dev/null
docker exec -i "$c" cat </dev/null
docker exec -u nobody "$c" true
for s in USR1 SIGRTMIN+3 40 64; do docker kill -s "$s" "$c" >/dev/null; done
docker pause "$c" >/dev/null
docker unpause "$c" >/dev/null
docker top "$c" >/dev/null
docker stats --no-stream "$c" >/dev/null
docker update --memory 64m --memory-swap 128m "$c" >/dev/null
docker update --pids-limit 50 --cpus 0.5 "$c" >/dev/null
docker restart -t 1 "$c" >/dev/null
docker stop -t 1 "$c" >/dev/null
docker start "$c" >/dev/null
docker rm -f "$c" >/dev/null
c=$(docker run -d --pid=host "${r[@]}" "$img" sh -c 'sleep 600 & while :; do sleep 1; done')
docker stop -t 1 "$c" >/dev/null
docker rm "$c" >/dev/null
docker run --rm --oom-kill-disable --memory 64m "${r[@]}" "$img" true

{
    echo "# argv (without argv[0]) that dockerd $(dockerd --version | awk '{print $3}' | tr -d ,) + containerd-shim-runc-v2 sent to the runtime,"
    echo "# recorded by scripts/record-dockerd-argv.sh: run (exit 0, 3, missing binary), run -t, -d, exec (-t, -i, -u),"
    echo "# kill -s USR1/SIGRTMIN+3/40/64, pause, unpause, top, stats, update, restart, stop, start, rm -f,"
    echo "# --pid=host stop (kill --all), --oom-kill-disable."
    sort -u "$argv_log"
} >"${1:-/dev/stdout}"
log "recorded $(sort -u "$argv_log" | wc -l) distinct command lines"
