//! Shared by the tests of ngram-ids under callers other than dockerd (containerd's `ctr`,
//! Podman; `tests/containerd.rs`, `tests/podman.rs`): the runtime with a private profile store
//! and alert log, the `ngram-ids` CLI on them, and the busybox workload that is trained and
//! then attacked.
//!
//! These tests are `#[ignore]`d (they need root, containerd and Podman) and run by
//! `make test-ecosystem`; they fail, never skip, when something they need is missing.

use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::ids::{Alert, ProfileMeta};
use crate::{run_cmd, Output};

/// A deterministic workload: one shell counting in a loop, then three forked programs, the
/// last a `sleep` of `secs` seconds (0 in training; a container kept up for `exec` sleeps
/// longer and makes the same calls).
pub fn workload(secs: u32) -> String {
    format!(
        "i=0; while [ $i -lt 200 ]; do echo $i > /dev/null; i=$((i+1)); done; \
         cat /etc/passwd > /dev/null; cat /etc/passwd > /dev/null; echo done; sleep {secs}"
    )
}

/// The attack after the workload: the shell drops a file where it never wrote (a web shell,
/// a cron job), then says whether it worked.
pub const ATTACK: &str = "echo pwned > /root/dropped && echo DROPPED";

/// The attack through an exec process (`ctr task exec`, `podman exec`, CRI `ExecSync`): a
/// shell reading `/etc/shadow`, as the Docker suite's intruder does. In enforce mode with
/// `ngram-ids.exec=enforce` the shell's exec of `cat` is refused, and the shell says so.
/// (A shell that drops a file from an exec process is not refused: its first calls are its
/// start phase, which the profile judges leniently.)
pub const EXEC_ATTACK: &str = "cat /etc/shadow";

/// What the shell prints when the exec of [`EXEC_ATTACK`]'s `cat` is refused.
pub const REFUSED: &str = "cat: Operation not permitted";

/// The workload (no sleep) followed by the attack.
pub fn attacked_workload() -> String {
    format!("{}; {ATTACK}", workload(0))
}

/// Time limit of one `ctr`/`podman` command.
pub const CMD_TIMEOUT: Duration = Duration::from_secs(120);

/// The `ngram-ids` binary under test: `NGRAM_IDS_BIN`, else `/usr/local/bin/ngram-ids`.
pub fn bin() -> PathBuf {
    std::env::var_os("NGRAM_IDS_BIN")
        .map_or_else(|| "/usr/local/bin/ngram-ids".into(), PathBuf::from)
}

/// Panics unless the tests run as root (they start daemons and containers).
pub fn require_root(test: &str) {
    // The effective uid is the second field of Uid: in /proc/self/status.
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("?");
    assert_eq!(
        euid, "0",
        "{test} needs root (run `make test-ecosystem` as root)"
    );
}

/// Panics unless `cmd` is on the PATH, naming the package that provides it.
pub fn require_command(cmd: &str, package: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(cmd).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "{cmd} is not installed: run scripts/setup-host.sh --test (Debian package {package})"
    );
}

/// The runtime with its own store and alert log under `/run/ngram-e2e-<tag>-<pid>/`, through
/// a wrapper script that callers take as their runc binary.
#[derive(Debug)]
pub struct PrivateRuntime {
    pub dir: PathBuf,
    pub store: PathBuf,
    pub alerts: PathBuf,
    /// `exec ngram-ids --store … --alerts … "$@"`.
    pub wrapper: PathBuf,
}

impl PrivateRuntime {
    pub fn new(tag: &str) -> Self {
        let dir = PathBuf::from(format!("/run/ngram-e2e-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the test directory");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
            .expect("chmod the test directory");
        let store = dir.join("store");
        let alerts = dir.join("alerts.jsonl");
        let wrapper = dir.join("ngram-ids");
        let script = format!(
            "#!/bin/sh\nexec {} --store {} --alerts {} \"$@\"\n",
            bin().display(),
            store.display(),
            alerts.display()
        );
        let mut f = std::fs::OpenOptions::new()
            .create_new(true)
            .write(true)
            .mode(0o700)
            .open(&wrapper)
            .expect("write the runtime wrapper");
        std::io::Write::write_all(&mut f, script.as_bytes()).expect("write the runtime wrapper");
        Self {
            dir,
            store,
            alerts,
            wrapper,
        }
    }

    /// `ngram-ids ARGS` on this store and alert log.
    #[track_caller]
    pub fn cli(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(bin());
        cmd.args(args)
            .env("NGRAM_IDS_DB", &self.store)
            .env("NGRAM_IDS_ALERTS", &self.alerts);
        run_cmd(cmd, b"", Duration::from_secs(90))
    }

    /// `profile show NAME --json`, or `None` while there is no such profile.
    pub fn profile(&self, name: &str) -> Option<ProfileMeta> {
        let out = self.cli(&["profile", "show", name, "--json"]);
        if out.code != Some(0) {
            return None;
        }
        let json: Value = serde_json::from_str(out.out())
            .unwrap_or_else(|e| panic!("`profile show --json` is not JSON ({e}): {out}"));
        Some(ProfileMeta::from_json(json))
    }

    /// Waits until profile `name` has merged `runs` training runs.
    #[track_caller]
    pub fn wait_for_runs(&self, name: &str, runs: u64) -> ProfileMeta {
        let mut last = None;
        crate::ids::poll(
            &format!("profile {name} with {runs} runs"),
            Duration::from_secs(60),
            || {
                last = self.profile(name);
                last.clone().filter(|m| m.runs >= runs)
            },
        )
    }

    /// Every alert of container `id` (full id) so far.
    #[track_caller]
    pub fn alerts(&self, id: &str) -> Vec<Alert> {
        if !self.alerts.exists() {
            return Vec::new();
        }
        let out = self.cli(&["alerts", "--json", "--container", id]);
        out.success();
        out.stdout
            .lines()
            .filter_map(Alert::parse)
            .filter(|a| a.container_id == id)
            .collect()
    }

    /// Waits up to 10 s for alerts of container `id` written at or after `since_ns` (0: any),
    /// then half a second more; those alerts.
    pub fn wait_for_alerts(&self, id: &str, since_ns: u64) -> Vec<Alert> {
        let after = || -> Vec<Alert> {
            self.alerts(id)
                .into_iter()
                .filter(|a| a.time_ns >= since_ns)
                .collect()
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if !after().is_empty() {
                std::thread::sleep(Duration::from_millis(500));
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        after()
    }
}

impl Drop for PrivateRuntime {
    fn drop(&mut self) {
        if std::env::var_os("NGRAM_IDS_E2E_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// The alerts as lines, for messages.
pub fn shown(alerts: &[Alert]) -> String {
    alerts
        .iter()
        .map(|a| format!("{a} rule {}", a.rule))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs `program args` with the time limit of [`CMD_TIMEOUT`].
#[track_caller]
pub fn cmd(program: &str, args: &[&str]) -> Output {
    let mut c = Command::new(program);
    c.args(args);
    run_cmd(c, b"", CMD_TIMEOUT)
}

/// `docker save IMAGE -o FILE` (the local images are built by scripts/build-images.sh).
#[track_caller]
pub fn docker_save(image: &str, file: &Path) {
    cmd("docker", &["save", image, "-o", &file.to_string_lossy()]).success();
}

/// The hard limits of this process for `RLIMIT_NOFILE` and `RLIMIT_NPROC`, from
/// `/proc/self/limits` (`unlimited` as `None`).
pub fn hard_limits() -> (Option<u64>, Option<u64>) {
    let text = std::fs::read_to_string("/proc/self/limits").expect("read /proc/self/limits");
    let hard = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l[name.len()..].split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
    };
    (hard("Max open files"), hard("Max processes"))
}
