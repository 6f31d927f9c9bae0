//! ngram-ids under Debian's Podman (issue 13): `podman --runtime ngram-ids run/exec/stop/rm`,
//! the profile keyed by the image ID Podman records in containers/storage's
//! `containers.json` (no annotation needed), `ngram-ids.*` as `--annotation`s, and an attack
//! reported in alert mode and refused in enforce mode.
//!
//! Podman writes `RLIMIT_NOFILE` 1048576 into the container's spec (and `RLIMIT_NPROC` 1048576
//! once any ulimit is configured), above the limits of the runtime it starts, which needs
//! CAP_SYS_RESOURCE; these machines lack it, so every runtime, runc included, fails at create.
//! The configuration that works: `default_ulimits` for both, `nofile` at or below the host's
//! hard limit and `nproc` at or below 32768 (Podman's own), in a containers.conf (here through
//! `CONTAINERS_CONF`); runc is run under the same configuration first, as the reference.
//!
//! Everything is private to the test: Podman's `--root`/`--runroot`, the runtime's store and
//! alert log, `--network none` (no host network is set up). Root only (`#[ignore]`d);
//! `make test-ecosystem` runs it with `--ignored`.

use std::path::{Path, PathBuf};

use ngram_e2e::ecosystem::{
    attacked_workload, cmd, docker_save, hard_limits, require_command, require_root, shown,
    workload, PrivateRuntime, EXEC_ATTACK, REFUSED,
};
use ngram_e2e::{Output, BUSYBOX};

/// Training runs of the busybox workload.
const TRAIN_RUNS: u64 = 3;

/// The `RLIMIT_NPROC` Podman 4.3 gives the runtime it starts.
const PODMAN_NPROC: u64 = 32768;

/// Podman with a private store and a containers.conf.
struct Podman {
    root: PathBuf,
    runroot: PathBuf,
    conf: PathBuf,
}

impl Podman {
    fn new() -> Self {
        let pid = std::process::id();
        let p = Self {
            root: PathBuf::from(format!("/var/lib/ngram-e2e-podman-{pid}")),
            runroot: PathBuf::from(format!("/run/ngram-e2e-podman-{pid}")),
            conf: PathBuf::from(format!("/run/ngram-e2e-podman-{pid}.conf")),
        };
        let (nofile, nproc) = hard_limits();
        let mut limits = Vec::new();
        if let Some(n) = nofile {
            limits.push(format!("\"nofile={n}:{n}\""));
        }
        // Podman 4.3 runs the runtime (through conmon) with RLIMIT_NPROC lowered to 32768
        // (seen in conmon's /proc/PID/limits on a host whose hard limit is 96369): a higher
        // value fails like an unset one.
        let nproc = nproc.map_or(PODMAN_NPROC, |n| n.min(PODMAN_NPROC));
        limits.push(format!("\"nproc={nproc}:{nproc}\""));
        let conf = format!(
            "# Written by tests/e2e/tests/podman.rs: the hard limits of this host.\n\
             [containers]\ndefault_ulimits = [{}]\n",
            limits.join(", ")
        );
        std::fs::write(&p.conf, conf).expect("write containers.conf");
        p
    }

    /// `podman --root … --runroot … [--runtime RT] ARGS` with this containers.conf.
    #[track_caller]
    fn run(&self, runtime: Option<&Path>, args: &[&str]) -> Output {
        let mut c = std::process::Command::new("podman");
        c.env("CONTAINERS_CONF", &self.conf)
            .arg("--root")
            .arg(&self.root)
            .arg("--runroot")
            .arg(&self.runroot);
        if let Some(rt) = runtime {
            c.arg("--runtime").arg(rt);
        }
        c.args(args);
        ngram_e2e::run_cmd(c, b"", ngram_e2e::ecosystem::CMD_TIMEOUT)
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.run(None, &["rm", "--all", "--force"]);
        let _ = self.run(None, &["rmi", "--all", "--force"]);
        // Podman's overlay mounts go with `system reset`-like cleanup: unmount what is left.
        let _ = cmd(
            "umount",
            &["--recursive", "--lazy", &self.root.to_string_lossy()],
        );
        if std::env::var_os("NGRAM_IDS_E2E_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(&self.root);
            let _ = std::fs::remove_dir_all(&self.runroot);
            let _ = std::fs::remove_file(&self.conf);
        }
    }
}

#[test]
#[ignore = "needs root and Podman (Debian's podman package): make test-ecosystem"]
fn podman_runs_execs_stops_and_detects() {
    require_root("podman_runs_execs_stops_and_detects");
    require_command("podman", "podman");
    require_command("runc", "runc");
    require_command("docker", "docker.io");
    let rt = PrivateRuntime::new("podman");
    let p = Podman::new();
    let tar = rt.dir.join("busybox.tar");
    docker_save(BUSYBOX, &tar);
    p.run(None, &["load", "--input", &tar.to_string_lossy()])
        .success();
    let image = format!("localhost/{BUSYBOX}:latest");
    let image_id = p
        .run(None, &["image", "inspect", "--format", "{{.Id}}", &image])
        .success()
        .out()
        .to_owned();
    let key = format!("sha256:{image_id}");
    let wrapper = rt.wrapper.clone();
    let ngram = Some(wrapper.as_path());
    let runc = Some(Path::new("/usr/sbin/runc"));

    // The reference: runc under the same configuration.
    let t0 = std::time::Instant::now();
    let out = p.run(
        runc,
        &[
            "run",
            "--rm",
            "--network",
            "none",
            &image,
            "sh",
            "-c",
            "ulimit -n; echo runc-ok",
        ],
    );
    out.success();
    assert!(out.stdout.contains("runc-ok"), "{out}");
    println!("podman + runc: {:.2?}", out.elapsed);

    // Train, keyed by the image ID from containers.json: no profile annotation.
    for i in 0..TRAIN_RUNS {
        let out = p.run(
            ngram,
            &[
                "run",
                "--rm",
                "--network",
                "none",
                "--name",
                &format!("h13-train-{i}"),
                "--annotation",
                "ngram-ids.mode=train",
                &image,
                "sh",
                "-c",
                &workload(0),
            ],
        );
        out.success();
        assert_eq!(out.stdout.trim_end(), "done", "{out}");
        println!("podman + ngram-ids (train): {:.2?}", out.elapsed);
    }
    let meta = rt.wait_for_runs(&key, TRAIN_RUNS);
    println!("podman: profile {key}: {meta}");
    assert_eq!(
        meta.json["name"].as_str(),
        Some(image.as_str()),
        "{}",
        meta.json
    );

    // Alert: the attack works and is reported, under the image's profile.
    let attack = attacked_workload();
    let out = p.run(
        ngram,
        &[
            "run",
            "--network",
            "none",
            "--name",
            "h13-alert",
            "--annotation",
            "ngram-ids.mode=alert",
            &image,
            "sh",
            "-c",
            &attack,
        ],
    );
    out.success();
    assert!(
        out.stdout.contains("DROPPED"),
        "alert mode must not refuse: {out}"
    );
    let id = p
        .run(None, &["inspect", "--format", "{{.Id}}", "h13-alert"])
        .success()
        .out()
        .to_owned();
    let found = rt.wait_for_alerts(&id, 0);
    println!("podman, alert mode, attack:\n{}", shown(&found));
    assert!(!found.is_empty(), "the attack raised no alert");
    assert!(
        found
            .iter()
            .all(|a| a.action == "alerted" && a.profile == image),
        "{}",
        shown(&found)
    );
    p.run(None, &["rm", "h13-alert"]).success();

    // Enforce, detached: the attack through `podman exec` is refused (exec=enforce), a normal
    // exec runs, then stop and rm.
    let up = workload(600);
    p.run(
        ngram,
        &[
            "run",
            "--detach",
            "--network",
            "none",
            "--name",
            "h13-enforce",
            "--annotation",
            "ngram-ids.mode=enforce",
            "--annotation",
            "ngram-ids.exec=enforce",
            &image,
            "sh",
            "-c",
            &up,
        ],
    )
    .success();
    let id = p
        .run(None, &["inspect", "--format", "{{.Id}}", "h13-enforce"])
        .success()
        .out()
        .to_owned();
    let out = p.run(None, &["exec", "h13-enforce", "cat", "/etc/passwd"]);
    out.success();
    assert!(out.stdout.starts_with("root:"), "{out}");
    let since = ngram_e2e::ids::now_ns();
    let out = p.run(None, &["exec", "h13-enforce", "sh", "-c", EXEC_ATTACK]);
    assert!(
        out.stderr.contains(REFUSED),
        "enforce let the exec attack through: {out}"
    );
    let found = rt.wait_for_alerts(&id, since);
    println!("podman, enforce mode, exec attack:\n{}", shown(&found));
    assert!(
        found
            .iter()
            .any(|a| a.action == "denied" && a.errno == Some(1)),
        "no refusal with EPERM: {}",
        shown(&found)
    );
    let state = p.run(
        None,
        &["inspect", "--format", "{{.State.Status}}", "h13-enforce"],
    );
    assert_eq!(state.out(), "running", "{state}");
    let out = p.run(None, &["stop", "--time", "2", "h13-enforce"]);
    out.success();
    println!("podman stop: {:.2?}", out.elapsed);
    p.run(None, &["rm", "h13-enforce"]).success();
    println!("podman: whole test in {:.1?}", t0.elapsed());
}
