# ngram-ids: the two commands of the README, and their parts.
# Everything builds in the release profile only (CI builds one profile: libcontainer is slow to build).
CARGO ?= cargo
# Honour CARGO_TARGET_DIR as cargo does.
BIN := $(or $(CARGO_TARGET_DIR),target)/release/ngram-ids

.PHONY: all setup setup-test build install demo test check unit e2e test-ecosystem bench eval-live eval-live-short eval-live-records

all: build

## Debian packages (docker.io, libseccomp-dev, ...) and a running dockerd; idempotent.
setup:
	./scripts/setup-host.sh

build: setup
	$(CARGO) build --release -p ngram-ids

## One command: set up the host (Docker, packages), build, install to /usr/local/bin,
## register the runtimes with dockerd, build the local images, run a container under ngram-ids.
install: build
	./scripts/register.sh $(BIN)
	./scripts/build-images.sh
	$(MAKE) demo

demo:
	docker run --rm --runtime=ngram-ids-train --label ngram-ids.profile=demo-busybox ngram-busybox sh -c 'echo "hello from a container traced by ngram-ids (train mode)"; grep Seccomp /proc/self/status'
	sleep 1
	ngram-ids profile show demo-busybox
	docker run --rm --runtime=ngram-ids --label ngram-ids.profile=demo-busybox ngram-busybox sh -c 'echo "hello again, now in alert mode"'
	ngram-ids alerts | tail -n 3 || true

## One command: every test (formatting, lints, unit and property tests, then the end-to-end
## suite with the real dockerd, against plain runc and against ngram-ids, then the short live
## evaluation of three services).
test: setup-test check unit install e2e test-ecosystem eval-live-short

## The packages the tests need besides those of the build (scripts/setup-host.sh --test).
setup-test:
	./scripts/setup-host.sh --test

check:
	$(CARGO) fmt --all -- --check
	$(CARGO) fmt --manifest-path tests/cri/Cargo.toml -- --check
	$(CARGO) clippy --release --workspace --all-targets -- -D warnings

## Unit, property and root tests. Root tests (the runtime's, which drive the built binary
## without Docker, and the supervisor's tracer tests) are #[ignore = "needs root…"] in a plain
## `cargo test` and run here with --ignored.
unit: build
	$(CARGO) test --release
	NGRAM_IDS_BIN=$(abspath $(BIN)) $(CARGO) test --release -p ngram-runtime --test root_lifecycle -- --ignored
	$(CARGO) test --release -p ngram-supervisor --test notify --test ptrace --test ebpf_differential --test ebpf_enforce --test auto -- --ignored
	$(CARGO) test --release -p ngram-ebpf -- --include-ignored
	$(CARGO) test --release -p ngram-ids --test dashboard --test registry -- --ignored

e2e:
	./scripts/test-e2e.sh --runtime runc
	./scripts/test-e2e.sh --runtime ngram-ids-train
	./scripts/test-e2e.sh --runtime ngram-ids-train --tracer ptrace --suite ids

## Beyond dockerd (issue 13; root): a private containerd with `ctr run` (train, alert, enforce,
## exec), Podman (run, exec, stop, rm, detection) and a CRI client running pods through the
## RuntimeClass handler (tests/cri, a crate outside the workspace: it needs protoc). Uses the
## built binary and the local images of `make install`.
test-ecosystem: setup-test
	NGRAM_IDS_BIN=$(abspath $(BIN)) $(CARGO) test --release -p ngram-e2e --test containerd --test podman -- --ignored --test-threads=1
	cd tests/cri && $(CARGO) clippy --release --all-targets -- -D warnings
	cd tests/cri && NGRAM_IDS_BIN=$(abspath $(BIN)) $(CARGO) test --release -- --ignored

## Benchmarks: the model's speed (cargo bench), then tracing overhead against runc with the
## real dockerd (bench/run.sh; needs `make install` first; about 6 minutes).
bench:
	$(CARGO) bench -p ngram-profiler
	./bench/run.sh

## Live evaluation on eight real services (bench/live; needs `make install` first): train, held-out
## load in alert mode (false alarms), attacks, enforce; writes bench/results/live-*.json and the
## table in docs/evaluation-live.md. Durations: LIVE_* variables (see docs/evaluation-live.md).
## The full protocol takes about 20 minutes per service.
eval-live:
	./bench/live/run.py

## The short version for CI: python, go and redis, about 10 minutes in all.
eval-live-short:
	./bench/live/run.py --short

## The live suite's recordings evaluated offline, n-gram, STIDE, the autoencoders and the call
## set side by side (issue 11, docs/evaluation.md "The live suite's recordings"; needs `make
## install` first): bench/live/record.py records python, nginx and redis into REC_OUT (about
## 30 minutes; durations: REC_* variables), bench/live/eval_records.py prints the tables.
REC_OUT ?= /tmp/ngram-live-records
eval-live-records:
	./bench/live/record.py $(REC_OUT)
	./bench/live/eval_records.py $(REC_OUT)
	./bench/live/eval_records.py $(REC_OUT) --runs keep
