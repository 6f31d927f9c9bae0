#!/usr/bin/env bash
# Prepare a Debian 12 host (as root, no systemd) for ngram-ids and its end-to-end tests:
# install the packages they need if any is missing and start dockerd if none runs.
# Idempotent: running it again on a prepared host changes nothing.
#
# Usage: scripts/setup-host.sh [--test]
#   --test  also the packages only the tests use (AppArmor's parser, Prometheus, headless
#           Chromium and its driver, containerd, Podman, protoc): `make test` passes it, `make install` does not, so an
#           install brings no browser and no Prometheus service onto a production host.
# Env:   DOCKERD_TIMEOUT (seconds to wait for dockerd, default 60)
#        DOCKERD_LOG (default /var/log/dockerd.log)
set -euo pipefail

die() { echo "setup-host: error: $*" >&2; exit 1; }
log() { echo "setup-host: $*" >&2; }

[[ $(id -u) -eq 0 ]] || die "must run as root (it installs packages and starts dockerd)"
tests=0
case ${1:-} in
    --test) tests=1 ;;
    "") ;;
    *) die "unknown argument '$1' (usage: scripts/setup-host.sh [--test])" ;;
esac

DOCKERD_TIMEOUT=${DOCKERD_TIMEOUT:-60}
DOCKERD_LOG=${DOCKERD_LOG:-/var/log/dockerd.log}

# Debian packages, and a command each provides that tells us whether it is installed.
# bsdutils gives `script` (a pseudo-terminal for `docker run -it`).
# apache2-utils gives `ab`, the load generator of the IDS tests (tests/e2e/tests/ids.rs): unlike
# wrk it counts failed requests itself (connect, read, length and non-2xx), it opens a new
# connection per request by default (accept/close is part of the server behaviour learned and
# checked) and it uses one thread, leaving the second core of small hosts to the container.
# wrk stays for ad-hoc throughput runs.
declare -A PKG_CMD=(
    [docker.io]=dockerd
    [libseccomp-dev]=""
    [busybox-static]=""
    [mmdebstrap]=mmdebstrap
    [jq]=jq
    [wrk]=wrk
    [apache2-utils]=ab
    [pkg-config]=pkg-config
    [bsdutils]=script
    [gcc]=cc
    [make]=make
    # ebpf/: clang builds the kernel program, bpftool dumps vmlinux.h, the vendored libbpf links libelf, zlib.
    [clang]=clang
    [bpftool]=bpftool
    [libelf-dev]=""
    [zlib1g-dev]=""
)
# Only with --test. apparmor gives `apparmor_parser`, which checks what `profile
# export-apparmor` writes (tests/e2e/tests/arguments.rs; parsing needs no AppArmor LSM). The
# dashboard's tests (make unit): Prometheus and promtool, headless Chromium and its driver (on a
# host with systemd, Debian's prometheus package enables a service on :9090).
# containerd (ctr), podman and runc: the tests beyond dockerd (make test-ecosystem, issue 13);
# protobuf-compiler builds the CRI client of tests/cri (k8s-cri's build script runs protoc).
# docker-registry is the registry of the profile push/pull test (shim/tests/registry.rs, make
# unit), which starts its own on a free loopback port; the package's service is not wanted.
# openssl makes that test's CA and server certificate (TLS with a CA of its own; htpasswd for
# its basic auth comes from apache2-utils, above).
if ((tests)); then
    PKG_CMD+=(
        [containerd]=ctr
        [podman]=podman
        [runc]=runc
        [protobuf-compiler]=protoc
        [apparmor]=apparmor_parser
        [prometheus]=prometheus
        [chromium]=chromium
        [chromium-driver]=chromedriver
        [docker-registry]=docker-registry
        [openssl]=openssl
    )
fi

missing=()
for pkg in "${!PKG_CMD[@]}"; do
    cmd=${PKG_CMD[$pkg]}
    if [[ -n $cmd ]] && ! command -v "$cmd" >/dev/null 2>&1; then
        missing+=("$pkg")
    elif [[ -z $cmd ]] && ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$pkg")
    fi
done

if ((${#missing[@]})); then
    log "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq || die "apt-get update failed"
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
        || die "apt-get install ${missing[*]} failed"
else
    log "packages already installed"
fi
# On a host with systemd, Debian's docker-registry starts a registry on :5000 at install; the
# test runs its own. Stop and disable the service (nothing to do without systemd).
if ((tests)) && command -v systemctl >/dev/null 2>&1 && [[ -d /run/systemd/system ]]; then
    systemctl disable --now docker-registry >/dev/null 2>&1 || true
fi

# Rust is not a Debian package here (bookworm's rustc is older than the workspace's
# rust-version): it comes from rustup. Say so instead of failing at the first build step.
[[ -d $HOME/.cargo/bin ]] && export PATH="$HOME/.cargo/bin:$PATH"
need_rust=$(sed -n 's/^rust-version = "\(.*\)"/\1/p' "$(dirname "${BASH_SOURCE[0]}")/../Cargo.toml")
command -v cargo >/dev/null 2>&1 \
    || die "cargo not found: install Rust ${need_rust:-stable} or newer with rustup (https://rustup.rs), then run this again"
have_rust=$(rustc --version | awk '{print $2}')
[[ $(printf '%s\n%s\n' "$need_rust" "$have_rust" | sort -V | head -n1) == "$need_rust" ]] \
    || die "rustc $have_rust is older than the workspace's rust-version $need_rust: rustup update stable"
for tool in rustfmt clippy; do
    cargo "${tool/rustfmt/fmt}" --version >/dev/null 2>&1 \
        || die "cargo $tool is missing: rustup component add $tool"
done

docker_ready() { timeout 10 docker info >/dev/null 2>&1; }

if docker_ready; then
    log "dockerd is running"
    exit 0
fi

started_pid=
if ! pidof dockerd >/dev/null; then
    log "starting dockerd (log: $DOCKERD_LOG)"
    # setsid: dockerd must outlive this script and not get its terminal's signals.
    setsid dockerd >>"$DOCKERD_LOG" 2>&1 </dev/null &
    started_pid=$!
fi

deadline=$((SECONDS + DOCKERD_TIMEOUT))
until [[ -S /var/run/docker.sock ]] && docker_ready; do
    if ((SECONDS >= deadline)); then
        die "dockerd did not answer within ${DOCKERD_TIMEOUT}s; last lines of $DOCKERD_LOG: $(tail -n 3 "$DOCKERD_LOG" 2>/dev/null | tr '\n' ' ')"
    fi
    if [[ -n $started_pid ]] && ! kill -0 "$started_pid" 2>/dev/null; then
        die "dockerd exited; last lines of $DOCKERD_LOG: $(tail -n 3 "$DOCKERD_LOG" 2>/dev/null | tr '\n' ' ')"
    fi
    sleep 1
done
log "dockerd is running"
