//! The binary's runc command line end to end, without Docker: create/start/state/exec/kill/
//! delete on a busybox bundle, traced in train mode into a private profile store, and the
//! re-exec from a protected binary (CVE-2019-5736: a private read-only overlay, or the sealed
//! memfd copy). Needs root and the built binary, so the tests are
//! `#[ignore]`d in a plain `cargo test`; `make unit` runs them:
//! `NGRAM_IDS_BIN=target/release/ngram-ids cargo test --release -p ngram-runtime --test
//! root_lifecycle -- --ignored`.

// Test helpers outside #[test] functions: a failed setup step should panic.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

struct Env {
    bin: PathBuf,
    root: PathBuf,
    dir: tempfile::TempDir,
}

/// The environment of a root test; a missing prerequisite fails the test (it only runs when
/// asked for with `--ignored`).
fn setup() -> Env {
    let bin =
        std::env::var_os("NGRAM_IDS_BIN").expect("set NGRAM_IDS_BIN to the built ngram-ids binary");
    assert!(nix::unistd::geteuid().is_root(), "this test needs root");
    assert!(
        Path::new("/bin/busybox").exists(),
        "this test needs /bin/busybox (apt-get install busybox-static)"
    );
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("state");
    Env {
        bin: PathBuf::from(bin),
        root,
        dir,
    }
}

impl Env {
    fn bundle(&self, id: &str, args: &[&str], uid: Value) -> PathBuf {
        let b = self.dir.path().join(id);
        let bin = b.join("rootfs/bin");
        std::fs::create_dir_all(&bin).unwrap();
        for d in ["proc", "dev", "tmp"] {
            std::fs::create_dir_all(b.join("rootfs").join(d)).unwrap();
        }
        std::fs::copy("/bin/busybox", bin.join("busybox")).unwrap();
        for l in ["sh", "sleep", "cat", "grep", "ls", "mkdir", "true"] {
            std::os::unix::fs::symlink("busybox", bin.join(l)).unwrap();
        }
        let caps = json!(["CAP_KILL", "CAP_CHOWN", "CAP_SETUID", "CAP_SETGID"]);
        let config = json!({
            "ociVersion": "1.0.2",
            "annotations": {"ngram-ids.profile": format!("root-test-{id}")},
            "root": {"path": "rootfs"},
            "hostname": "t",
            "process": {
                "args": args, "cwd": "/", "env": ["PATH=/bin"],
                "user": {"uid": uid, "gid": 0},
                "capabilities": {"bounding": caps, "effective": caps, "permitted": caps}
            },
            "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
            "hooks": {"poststop": [{"path": "/bin/false"}]},
            "linux": {
                "namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "ipc"},
                               {"type": "uts"}, {"type": "network"}],
                "cgroupsPath": format!("/ngram-rt-test/{id}"),
                "seccomp": {
                    "defaultAction": "SCMP_ACT_ALLOW",
                    "architectures": ["SCMP_ARCH_X86_64"],
                    "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                                  "errnoRet": 1}]
                }
            }
        });
        std::fs::write(b.join("config.json"), config.to_string()).unwrap();
        b
    }

    /// The binary with `--root` and a private store and alert log, in train mode (a traced
    /// container needs a profile to score against otherwise).
    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--root")
            .arg(&self.root)
            .arg("--store")
            .arg(self.dir.path().join("store"))
            .arg("--alerts")
            .arg(self.dir.path().join("alerts.jsonl"))
            .arg("--mode=train")
            .args(args);
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut c = self.command(args);
        c.stdin(Stdio::null());
        c.output().unwrap()
    }

    /// For create: the container inherits stdout/stderr, so they are files, not pipes that
    /// would stay open while it runs. Returns (success, stdout + stderr).
    fn create(&self, args: &[&str]) -> (bool, String) {
        self.create_with(&[], args)
    }

    /// `create` with extra environment variables.
    fn create_with(&self, env: &[(&str, &str)], args: &[&str]) -> (bool, String) {
        let path = self.dir.path().join("create-stdio");
        let f = std::fs::File::create(&path).unwrap();
        let mut c = self.command(args);
        c.envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(f.try_clone().unwrap())
            .stderr(f);
        let ok = c.status().unwrap().success();
        (ok, std::fs::read_to_string(&path).unwrap())
    }

    fn state(&self, id: &str) -> Value {
        let out = self.run(&["state", id]);
        assert!(out.status.success(), "state {id}: {out:?}");
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn wait_status(&self, id: &str, want: &str) {
        let t = Instant::now();
        while self.state(id)["status"] != want {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "{id} never became {want}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn last_error(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap();
    let line = text
        .lines()
        .rev()
        .find(|l| l.contains("\"level\":\"error\""))
        .unwrap_or_else(|| panic!("no error line in {text}"));
    let v: Value = serde_json::from_str(line).unwrap();
    assert!(v["time"].is_string());
    v["msg"].as_str().unwrap().to_owned()
}

/// How a runtime process is protected (CVE-2019-5736), as seen from outside it.
#[derive(Debug, PartialEq)]
enum Protection {
    /// A private read-only overlay of the binary's directory (decision 110).
    Overlay,
    /// A sealed memfd copy (decision 105).
    Memfd,
}

/// Open `path` for writing and write the ELF magic at offset 0 (the bytes already there, so
/// a write that got through would change nothing but the assertion): opening or writing must
/// fail.
fn assert_unwritable(path: &str) {
    if let Ok(mut w) = std::fs::OpenOptions::new().write(true).open(path) {
        assert!(w.write_all(b"\x7fELF").is_err(), "wrote into {path}");
    }
}

/// CVE-2019-5736: runtime process `pid` runs from a binary that is not the host's file `bin`
/// (another path, another inode) and that cannot be written through `/proc/PID/exe`; which
/// protection it is.
fn assert_runs_protected(bin: &Path, pid: &str) -> Protection {
    use nix::fcntl::{fcntl, FcntlArg, SealFlag};
    use std::os::unix::fs::MetadataExt;
    let exe = format!("/proc/{pid}/exe");
    let target = std::fs::read_link(&exe).unwrap();
    let host = std::fs::metadata(bin).unwrap();
    let ran = std::fs::metadata(&exe).unwrap();
    assert_ne!(
        target,
        bin.canonicalize().unwrap(),
        "{pid} runs the host binary"
    );
    assert_ne!(
        (ran.dev(), ran.ino()),
        (host.dev(), host.ino()),
        "process {pid} runs from the host binary's inode ({target:?})"
    );
    assert_eq!(ran.len(), host.len(), "process {pid} runs another program");
    assert_unwritable(&exe);
    let f = std::fs::File::open(&exe).unwrap();
    if target.to_string_lossy().starts_with("/memfd:ngram-ids") {
        let bits = fcntl(f.as_raw_fd(), FcntlArg::F_GET_SEALS).unwrap();
        let seals = SealFlag::from_bits_truncate(bits);
        let want = SealFlag::F_SEAL_SEAL
            | SealFlag::F_SEAL_SHRINK
            | SealFlag::F_SEAL_GROW
            | SealFlag::F_SEAL_FUTURE_WRITE;
        assert!(seals.contains(want), "seals of {exe}: {seals:?}");
        Protection::Memfd
    } else {
        let fs = nix::sys::statfs::fstatfs(&f).unwrap();
        assert_eq!(
            fs.filesystem_type(),
            nix::sys::statfs::OVERLAYFS_SUPER_MAGIC,
            "process {pid} runs from {target:?}: neither a memfd nor an overlay"
        );
        let err = std::fs::OpenOptions::new()
            .write(true)
            .open(&exe)
            .unwrap_err();
        assert_eq!(
            err.raw_os_error(),
            Some(libc::EROFS),
            "open {exe} for writing: {err}"
        );
        Protection::Overlay
    }
}

#[test]
#[ignore = "needs root, /bin/busybox and NGRAM_IDS_BIN=<built ngram-ids>: make unit runs it"]
fn lifecycle_exec_seccomp_signals_and_hooks() {
    let e = setup();
    let id = format!("ngram-rt-{}", std::process::id());
    // pid 1 of a pid namespace only gets signals it has a handler for: trap SIGRTMIN+3.
    let b = e.bundle(
        &id,
        &["sh", "-c", "trap 'exit 7' 37; while :; do sleep 0.1; done"],
        json!(0),
    );
    let log = e.dir.path().join("log.json");
    let logs = log.to_str().unwrap();
    let bs = b.to_str().unwrap();

    let (ok, printed) = e.create(&[
        "--log",
        logs,
        "--log-format",
        "json",
        "create",
        "--bundle",
        bs,
        &id,
    ]);
    assert!(ok, "{printed}");
    assert!(printed.is_empty(), "create printed: {printed}");
    assert_eq!(e.state(&id)["status"], "created");
    // The container's init is a clone of `create`: protected too (decisions 105, 110).
    assert_runs_protected(&e.bin, &e.state(&id)["pid"].to_string());
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&e.root), 0o700);
    assert_eq!(mode(&e.root.join(&id)), 0o700);

    assert!(e.run(&["start", &id]).status.success());
    assert_eq!(e.state(&id)["status"], "running");
    let supervisor = std::fs::read_to_string(e.root.join(&id).join("supervisor.pid")).unwrap();
    assert_runs_protected(&e.bin, supervisor.trim());

    // exec as Docker does it (--process), without --detach to get the exit code.
    let caps = json!(["CAP_KILL", "CAP_CHOWN"]);
    let process = json!({
        "args": ["sh", "-c",
                 "grep -E '^(Seccomp|NoNewPrivs|CapEff):' /proc/self/status; ls /proc/self/fd; mkdir /tmp/x"],
        "cwd": "/", "env": ["PATH=/bin"], "user": {"uid": 0, "gid": 0},
        "capabilities": {"bounding": caps, "effective": caps, "permitted": caps}
    });
    let pj = e.dir.path().join("process.json");
    std::fs::write(&pj, process.to_string()).unwrap();
    let out = e.run(&["exec", "--process", pj.to_str().unwrap(), &id]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Seccomp:\t2"), "{out:?}");
    assert!(text.contains("NoNewPrivs:\t0"), "{out:?}");
    // CAP_KILL|CAP_CHOWN only: the lent CAP_SYS_ADMIN is gone.
    assert!(text.contains("CapEff:\t0000000000000021"), "{out:?}");
    let fds: Vec<&str> = text.lines().filter(|l| l.parse::<u32>().is_ok()).collect();
    assert_eq!(fds, ["0", "1", "2", "3"], "fds in the exec process: {text}"); // 3 = ls's dir
    assert_eq!(
        out.status.code(),
        Some(1),
        "mkdir must be denied by seccomp: {out:?}"
    );

    // A real-time signal (37 = SIGRTMIN+3) reaches the trap.
    assert!(e.run(&["kill", &id, "SIGRTMIN+3"]).status.success());
    e.wait_status(&id, "stopped");
    assert_eq!(e.state(&id)["pid"], 0);

    // The poststop hook (/bin/false) fails, and the state is removed anyway.
    let out = e.run(&["delete", &id]);
    assert!(out.status.success(), "{out:?}");
    assert!(!e.root.join(&id).exists());
    assert!(e.run(&["delete", "--force", &id]).status.success());
    let out = e.run(&["state", &id]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
}

#[test]
#[ignore = "needs root, /bin/busybox and NGRAM_IDS_BIN=<built ngram-ids>: make unit runs it"]
fn create_errors_go_to_the_log_only() {
    let e = setup();
    let log = e.dir.path().join("log.json");
    let logs = log.to_str().unwrap();

    let id = format!("ngram-rt-bad-{}", std::process::id());
    let b = e.bundle(&id, &["sleep", "1"], json!("root"));
    let (ok, printed) = e.create(&[
        "--log",
        logs,
        "--log-format",
        "json",
        "create",
        "--bundle",
        b.to_str().unwrap(),
        &id,
    ]);
    assert!(!ok);
    assert!(printed.is_empty(), "create printed: {printed}");
    let msg = last_error(&log);
    assert!(msg.contains("process.user.uid"), "{msg}");

    let id = format!("ngram-rt-missing-{}", std::process::id());
    let b = e.bundle(&id, &["nosuchcmd"], json!(0));
    let (ok, printed) = e.create(&[
        "--log",
        logs,
        "--log-format",
        "json",
        "create",
        "--bundle",
        b.to_str().unwrap(),
        &id,
    ]);
    assert!(!ok);
    assert!(printed.is_empty(), "create printed: {printed}");
    let msg = last_error(&log);
    assert!(
        msg.contains("exec: \"nosuchcmd\": executable file not found in $PATH"),
        "{msg}"
    );
    let _ = e.run(&["delete", "--force", &id]);
    // The supervisors `create` started before building (decision 106) are gone with their
    // early logs.
    let bad = format!("ngram-rt-bad-{}", std::process::id());
    for id in [&bad, &id] {
        assert_eq!(supervisors_of(id), Vec::<u32>::new(), "supervisors of {id}");
        let early = e.root.join(".supervisor-early").join(format!("{id}.log"));
        assert!(!early.exists(), "{} is left", early.display());
    }
}

/// The pids of the `__supervise` processes whose plan names container `id`.
fn supervisors_of(id: &str) -> Vec<u32> {
    let quoted = format!("\"id\":\"{id}\"");
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                let c = String::from_utf8_lossy(&c);
                c.contains("__supervise") && c.contains(&quoted)
            })
        })
        .collect()
}

/// Start container `id` created from bundle `b` and wait until its process has ended.
fn run_to_end(e: &Env, id: &str, b: &Path) {
    let (ok, printed) = e.create(&["create", "--bundle", b.to_str().unwrap(), id]);
    assert!(ok, "create {id}: {printed}");
    let out = e.run(&["start", id]);
    assert!(out.status.success(), "start {id}: {out:?}");
    e.wait_status(id, "stopped");
}

#[test]
#[ignore = "needs root, /bin/busybox and NGRAM_IDS_BIN=<built ngram-ids>: make unit runs it"]
fn init_stdio_dev_null_is_read_write_as_in_runc() {
    let e = setup();
    let id = format!("ngram-rt-null-{}", std::process::id());
    // create's stdin is /dev/null: libcontainer re-opened it read-only in the container.
    let b = e.bundle(
        &id,
        &[
            "sh",
            "-c",
            "echo w >&0 && echo fd0-writable; grep flags /proc/self/fdinfo/0",
        ],
        json!(0),
    );
    run_to_end(&e, &id, &b);
    let printed = std::fs::read_to_string(e.dir.path().join("create-stdio")).unwrap();
    assert!(printed.contains("fd0-writable"), "{printed}");
    let flags = printed
        .lines()
        .find_map(|l| l.strip_prefix("flags:"))
        .map(|f| u32::from_str_radix(f.trim(), 8).unwrap())
        .unwrap_or_else(|| panic!("no flags line: {printed}"));
    assert_eq!(flags & 3, 2, "fd 0 is not O_RDWR: {printed}");
    assert!(e.run(&["delete", &id]).status.success());
}

/// A container `id` running `true` whose hooks are `hooks` (`"save:NAME"`: write the state
/// read on stdin to OUT/NAME; `"fail"`: exit 3), per kind. Returns (canonical bundle, OUT).
fn bundle_with_hooks(e: &Env, id: &str, hooks: &[(&str, &[&str])]) -> (PathBuf, PathBuf) {
    let b = std::fs::canonicalize(e.bundle(id, &["true"], json!(0))).unwrap();
    let out = e.dir.path().join(format!("{id}-hooks"));
    std::fs::create_dir(&out).unwrap();
    // Hooks run on the host: the rootfs's static busybox is their shell.
    let sh = b.join("rootfs/bin/busybox").to_string_lossy().into_owned();
    let hook = |what: &str| {
        let script = match what.strip_prefix("save:") {
            Some(name) => format!("cat > {}/{name}", out.display()),
            None => "exit 3".to_owned(),
        };
        json!({"path": sh, "args": ["sh", "-c", script]})
    };
    let cfg_path = b.join("config.json");
    let mut cfg: Value =
        serde_json::from_str(&std::fs::read_to_string(&cfg_path).unwrap()).unwrap();
    cfg["hooks"] = json!({});
    for (kind, list) in hooks {
        cfg["hooks"][*kind] = Value::Array(list.iter().map(|h| hook(h)).collect());
    }
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();
    (b, out)
}

/// The state a `save:` hook read on its stdin.
fn hook_state(out: &Path, name: &str) -> Value {
    let text = std::fs::read_to_string(out.join(name))
        .unwrap_or_else(|err| panic!("the {name} hook did not run: {err}"));
    serde_json::from_str(&text).unwrap()
}

#[test]
#[ignore = "needs root, /bin/busybox and NGRAM_IDS_BIN=<built ngram-ids>: make unit runs it"]
fn state_and_hooks_name_the_callers_bundle() {
    let e = setup();
    let id = format!("ngram-rt-bundle-{}", std::process::id());
    let (b, out) = bundle_with_hooks(
        &e,
        &id,
        &[
            ("prestart", &["save:prestart"]),
            ("createRuntime", &["save:createRuntime"]),
            ("poststart", &["save:poststart"]),
            ("poststop", &["save:poststop"]),
        ],
    );
    let bs = b.to_str().unwrap();
    let (ok, printed) = e.create(&["create", "--bundle", bs, &id]);
    assert!(ok, "{printed}");
    assert_eq!(e.state(&id)["bundle"], bs);
    assert_eq!(e.state(&id)["rootfs"], b.join("rootfs").to_str().unwrap());
    assert!(e.run(&["start", &id]).status.success());
    e.wait_status(&id, "stopped");
    assert_eq!(e.state(&id)["bundle"], bs);
    assert!(e.run(&["delete", &id]).status.success());
    // libcontainer's statuses: "creating" for the hooks that run during create.
    for (hook, status) in [
        ("prestart", "creating"),
        ("createRuntime", "creating"),
        ("poststart", "running"),
        ("poststop", "stopped"),
    ] {
        let state = hook_state(&out, hook);
        assert_eq!(state["bundle"], bs, "{hook}: {state}");
        assert_eq!(state["id"], id.as_str(), "{hook}: {state}");
        assert_eq!(state["status"], status, "{hook}: {state}");
    }
}

#[test]
#[ignore = "needs root, /bin/busybox and NGRAM_IDS_BIN=<built ngram-ids>: make unit runs it"]
fn a_failing_poststart_hook_is_a_warning() {
    let e = setup();
    let id = format!("ngram-rt-poststart-{}", std::process::id());
    let (b, out) = bundle_with_hooks(&e, &id, &[("poststart", &["fail", "save:poststart"])]);
    let (ok, printed) = e.create(&["create", "--bundle", b.to_str().unwrap(), &id]);
    assert!(ok, "{printed}");
    let started = e.run(&["start", &id]);
    assert!(started.status.success(), "{started:?}");
    let warned = String::from_utf8_lossy(&started.stderr);
    assert!(warned.contains("poststart hook 0"), "no warning: {warned}");
    assert_eq!(hook_state(&out, "poststart")["status"], "running");
    e.wait_status(&id, "stopped");
    assert!(e.run(&["delete", &id]).status.success());
}

#[test]
#[ignore = "needs root, /bin/busybox and NGRAM_IDS_BIN=<built ngram-ids>: make unit runs it"]
fn every_poststop_hook_runs_in_order_after_a_failing_one() {
    let e = setup();
    let id = format!("ngram-rt-poststop-{}", std::process::id());
    let (b, out) = bundle_with_hooks(
        &e,
        &id,
        &[("poststop", &["save:first", "fail", "save:third"])],
    );
    run_to_end(&e, &id, &b);
    let deleted = e.run(&["delete", &id]);
    assert!(deleted.status.success(), "{deleted:?}");
    assert!(!e.root.join(&id).exists());
    let mtime = |n: &str| std::fs::metadata(out.join(n)).unwrap().modified().unwrap();
    assert_eq!(hook_state(&out, "first")["status"], "stopped");
    assert_eq!(hook_state(&out, "third")["status"], "stopped");
    assert!(mtime("first") <= mtime("third"));
    let warned = String::from_utf8_lossy(&deleted.stderr);
    assert!(warned.contains("poststop hook 1"), "no warning: {warned}");
}

#[test]
#[ignore = "needs root, /bin/busybox and NGRAM_IDS_BIN=<built ngram-ids>: make unit runs it"]
fn delete_returns_after_the_supervisor_has_merged() {
    let e = setup();
    let id = format!("ngram-rt-merge-{}", std::process::id());
    let b = e.bundle(&id, &["true"], json!(0));
    let (ok, printed) = e.create(&["create", "--bundle", b.to_str().unwrap(), &id]);
    assert!(ok, "create {id}: {printed}");
    let pid: i32 = std::fs::read_to_string(e.root.join(&id).join("supervisor.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // Hold the store's lock from before the container runs (its supervisor has loaded the
    // profile at create, and merges as soon as the container ends): the supervisor cannot
    // merge (nor exit) until it is released.
    let lock = std::fs::File::open(e.dir.path().join("store/lock")).unwrap();
    lock.lock().unwrap();
    let out = e.run(&["start", &id]);
    assert!(out.status.success(), "start {id}: {out:?}");
    e.wait_status(&id, "stopped");
    let mut delete = e.command(&["delete", &id]);
    delete
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = delete.spawn().unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "delete returned while the supervisor waited for the store to merge"
    );
    lock.unlock().unwrap();
    let t = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "delete never returned"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success());
    // Gone, or a zombie its new parent has not reaped yet.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat.rsplit_once(") ").map(|(_, rest)| &rest[..1]);
    assert!(
        matches!(state, None | Some("Z" | "X")),
        "supervisor {pid} still runs after delete: {stat}"
    );
    // The run's counts are in the store when delete has returned.
    let show = Command::new(&e.bin)
        .arg("profile")
        .arg("--db")
        .arg(e.dir.path().join("store"))
        .args(["show", "--json", &format!("root-test-{id}")])
        .output()
        .unwrap();
    assert!(show.status.success(), "{show:?}");
    let meta: Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!(meta["runs"], 1, "{meta}");
}

#[test]
#[ignore = "needs root, /bin/busybox and NGRAM_IDS_BIN=<built ngram-ids>: make unit runs it"]
fn init_runs_from_an_unwritable_copy_or_overlay_never_the_host_binary() {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let e = setup();
    let before = std::fs::metadata(&e.bin).unwrap();
    // auto: the private overlay on this kernel (root, overlayfs, fsopen); copy: the fallback,
    // asked for by the environment here (`--seal=copy` in runtimeArgs does the same).
    for (setting, want) in [("auto", Protection::Overlay), ("copy", Protection::Memfd)] {
        let id = format!("ngram-rt-seal-{setting}-{}", std::process::id());
        let b = e.bundle(&id, &["sleep", "1000"], json!(0));
        let (ok, printed) = e.create_with(
            &[("NGRAM_IDS_SEAL", setting)],
            &["create", "--bundle", b.to_str().unwrap(), &id],
        );
        assert!(ok, "create {id}: {printed}");
        let init = e.state(&id)["pid"].to_string();
        assert_eq!(
            assert_runs_protected(&e.bin, &init),
            want,
            "{setting}: init"
        );
        let pid_file = e.root.join(&id).join("supervisor.pid");
        let supervisor = std::fs::read_to_string(pid_file).unwrap();
        assert_eq!(
            assert_runs_protected(&e.bin, supervisor.trim()),
            want,
            "{setting}: supervisor"
        );
        // The exploit's way: hold /proc/PID/exe (O_PATH) while the runtime process lives,
        // reopen it for writing once the process is gone.
        let held = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH)
            .open(format!("/proc/{init}/exe"))
            .unwrap();
        assert!(e.run(&["delete", "--force", &id]).status.success());
        let t = Instant::now();
        while Path::new(&format!("/proc/{init}")).exists() {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "init {init} lives on"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_unwritable(&format!("/proc/self/fd/{}", held.as_raw_fd()));
    }
    // Fail closed: a process told by its parent that it was re-executed from the overlay but
    // not running from one makes the copy; one told so of the copy refuses to run.
    let sealed_exec = |tried: &str| {
        let mut c = e.command(&["--debug", "exec", "--process", "/dev/null", "no-such-ctr"]);
        c.env("_NGRAM_IDS_SEAL_TRIED", tried).stdin(Stdio::null());
        let out = c.output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, err) = sealed_exec("overlay");
    assert!(
        !ok && err.contains("route=copy") && err.contains("does not exist"),
        "{err}"
    );
    let (ok, err) = sealed_exec("copy");
    assert!(!ok && err.contains("refusing to run unprotected"), "{err}");
    assert!(!err.contains("does not exist"), "it went on: {err}");

    let after = std::fs::metadata(&e.bin).unwrap();
    assert_eq!(
        (after.len(), after.mtime(), after.mtime_nsec()),
        (before.len(), before.mtime(), before.mtime_nsec()),
        "the host binary changed"
    );
}
