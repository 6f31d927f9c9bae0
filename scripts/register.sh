#!/usr/bin/env bash
# Install the ngram-ids binary and register it with dockerd as three runtimes:
#   ngram-ids          {"path": "/usr/local/bin/ngram-ids"}  (default mode: alert)
#   ngram-ids-train    {"path": "/usr/local/bin/ngram-ids", "runtimeArgs": ["--mode=train"]}
#   ngram-ids-enforce  {"path": "/usr/local/bin/ngram-ids", "runtimeArgs": ["--mode=enforce"]}
# Other keys of /etc/docker/daemon.json are kept. dockerd is reloaded with SIGHUP.
#
# Usage: scripts/register.sh [BIN]
#   BIN defaults to target/release/ngram-ids under $CARGO_TARGET_DIR (or ./target).
# Env:   NGRAM_IDS_DEST (default /usr/local/bin/ngram-ids), DAEMON_JSON (default
#        /etc/docker/daemon.json), REGISTER_TIMEOUT (seconds, default 30)
set -euo pipefail

die() { echo "register: error: $*" >&2; exit 1; }
log() { echo "register: $*" >&2; }

[[ $(id -u) -eq 0 ]] || die "must run as root (it writes /usr/local/bin and /etc/docker)"
command -v jq >/dev/null || die "jq is missing (run scripts/setup-host.sh)"

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=${1:-${CARGO_TARGET_DIR:-$repo/target}/release/ngram-ids}
dest=${NGRAM_IDS_DEST:-/usr/local/bin/ngram-ids}
daemon_json=${DAEMON_JSON:-/etc/docker/daemon.json}
timeout_s=${REGISTER_TIMEOUT:-30}

[[ -f $bin && -x $bin ]] || die "no executable at $bin (build it: cargo build --release -p ngram-ids)"

mkdir -p "$(dirname "$daemon_json")"
current='{}'
if [[ -s $daemon_json ]]; then
    current=$(cat "$daemon_json")
    jq -e 'type == "object"' <<<"$current" >/dev/null 2>&1 \
        || die "$daemon_json is not a JSON object; fix it by hand"
fi
# Copy then rename, so a running container's runtime binary is never half-written.
install -d -m 0755 "$(dirname "$dest")"
install -m 0755 -o root -g root "$bin" "$dest.new"
mv -f "$dest.new" "$dest"
log "installed $bin -> $dest"

merged=$(jq --arg path "$dest" '
    .runtimes = ((.runtimes // {}) + {
        "ngram-ids": {"path": $path},
        "ngram-ids-train": {"path": $path, "runtimeArgs": ["--mode=train"]},
        "ngram-ids-enforce": {"path": $path, "runtimeArgs": ["--mode=enforce"]}
    })' <<<"$current")
if [[ $merged != "$(jq . <<<"$current")" ]]; then
    tmp=$(mktemp "$daemon_json.XXXXXX")
    printf '%s\n' "$merged" >"$tmp"
    chmod 0644 "$tmp"
    mv -f "$tmp" "$daemon_json"
    log "updated $daemon_json"
else
    log "$daemon_json already registers ngram-ids"
fi

pid=$(pidof dockerd || true)
[[ -n $pid ]] || die "dockerd is not running (run scripts/setup-host.sh)"
# shellcheck disable=SC2086 # one pid, or several if the host runs more than one dockerd
kill -HUP $pid

deadline=$((SECONDS + timeout_s))
while :; do
    runtimes=$(timeout 10 docker info --format '{{json .Runtimes}}' 2>/dev/null || true)
    if jq -e --arg path "$dest" '
        .["ngram-ids"].path == $path and .["ngram-ids-train"].path == $path
        and .["ngram-ids-enforce"].path == $path' \
        <<<"${runtimes:-null}" >/dev/null 2>&1; then
        break
    fi
    ((SECONDS < deadline)) || die "dockerd does not list the ngram-ids runtimes after ${timeout_s}s (docker info: ${runtimes:-no answer}); see /var/log/dockerd.log"
    sleep 1
done
log "dockerd lists runtimes: $(jq -c 'keys' <<<"$runtimes")"
