//! Checks the intended integration for real, without the runtime crate: libcontainer 0.7 loads
//! our rewritten seccomp section itself (in the container's init, while CAP_SYS_ADMIN is still
//! held, so no `no_new_privs` is forced), and then tries to hand the listener over: init's
//! `sendmsg` to libcontainer's main process is itself notified and would block forever. The
//! supervisor breaks that by finding init among our descendants, taking the listener with
//! `pidfd_getfd`, answering CONTINUE to the runtime's calls unrecorded, and recording from the
//! workload's first `execve`.
//!
//!   cargo run -p ngram-supervisor --example libcontainer_route [-- unconfined|docker]
//!
//! Root only. Builds a busybox bundle under /tmp/ngram-sup-lc/ from Debian's busybox-static.

use std::io::IoSliceMut;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use libcontainer::container::builder::ContainerBuilder;
use libcontainer::syscall::syscall::SyscallType;
use ngram_experiments_libcontainer_route::{rewrite, RewriteOptions};
use ngram_supervisor::syscalls::name;
use ngram_supervisor::{Decision, Event, NotifyConfig, NotifyTracer, RecordFrom, Tracer};
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags, UnixAddr};
use oci_spec::runtime::{LinuxSeccomp, ProcessBuilder, RootBuilder, Spec};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

const BASE: &str = "/tmp/ngram-sup-lc";
const DOCKER: &str = include_str!("../tests/fixtures/docker-default-amd64.json");
const SCRIPT: &str = "echo hi > /dev/null; cat /etc/hostname > /dev/null; busybox unshare -m true 2>/dev/null || echo unshare failed";

fn make_rootfs(root: &Path) -> Res<()> {
    for d in ["bin", "proc", "dev", "sys", "tmp", "etc"] {
        std::fs::create_dir_all(root.join(d))?;
    }
    let bb = root.join("bin/busybox");
    if !bb.exists() {
        std::fs::copy("/bin/busybox", &bb)?;
    }
    for app in ["sh", "cat", "echo", "true"] {
        let l = root.join("bin").join(app);
        if !l.exists() {
            std::os::unix::fs::symlink("busybox", &l)?;
        }
    }
    std::fs::write(root.join("etc/hostname"), "traced\n")?;
    Ok(())
}

fn spec(seccomp: LinuxSeccomp) -> Res<Spec> {
    let mut spec = Spec::default();
    spec.set_root(Some(
        RootBuilder::default()
            .path("rootfs")
            .readonly(false)
            .build()?,
    ));
    let mut process = ProcessBuilder::default()
        .args(vec!["/bin/sh".into(), "-c".into(), SCRIPT.into()])
        .env(vec!["PATH=/bin".into()])
        .cwd("/")
        .terminal(false)
        .build()?;
    // As Docker writes it without --security-opt no-new-privileges: absent. (oci-spec's
    // default is Some(true); Some(false) would also send libcontainer down the late path.)
    // NNP=true / NNP=false in the environment set it explicitly, to compare.
    match std::env::var("NNP").as_deref() {
        Ok("true") => process.set_no_new_privileges(Some(true)),
        Ok("false") => process.set_no_new_privileges(Some(false)),
        _ => process.set_no_new_privileges(None),
    };
    spec.set_process(Some(process));
    let mut linux = spec.linux().clone().unwrap_or_default();
    linux.set_seccomp(Some(seccomp));
    spec.set_linux(Some(linux));
    Ok(spec)
}

/// The listenerPath end: accept libcontainer's message (container state + the listener) and
/// drop the descriptor, since we already hold the same listener.
fn serve_listener(sock: UnixListener) {
    if let Ok((conn, _)) = sock.accept() {
        let mut buf = vec![0u8; 64 * 1024];
        let mut iov = [IoSliceMut::new(&mut buf)];
        let mut cmsg = nix::cmsg_space!([RawFd; 4]);
        match recvmsg::<UnixAddr>(
            conn.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::empty(),
        ) {
            Ok(msg) => {
                let n = msg.bytes;
                let mut fds = Vec::new();
                if let Ok(cmsgs) = msg.cmsgs() {
                    for c in cmsgs {
                        if let ControlMessageOwned::ScmRights(r) = c {
                            fds.extend(r);
                        }
                    }
                }
                for fd in &fds {
                    // SAFETY: SCM_RIGHTS gave us these descriptors; nothing else owns them.
                    drop(unsafe { OwnedFd::from_raw_fd(*fd) });
                }
                println!(
                    "listenerPath got {n} bytes of state and {} fd(s)",
                    fds.len()
                );
            }
            Err(e) => println!("listenerPath recvmsg: {e}"),
        }
    }
}

fn main() -> Res<()> {
    let mode = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "unconfined".into());
    let base = PathBuf::from(BASE);
    let bundle = base.join("bundle");
    make_rootfs(&bundle.join("rootfs"))?;
    let state_root = base.join("state");
    std::fs::create_dir_all(&state_root)?;
    let sock_path = base.join("listener.sock");
    let _ = std::fs::remove_file(&sock_path);
    let listener = UnixListener::bind(&sock_path)?;

    let opts = RewriteOptions::new(&sock_path);
    let section = match mode.as_str() {
        "docker" => rewrite(Some(&serde_json::from_str(DOCKER)?), &opts)?,
        _ => rewrite(None, &opts)?,
    };
    spec(section)?.save(bundle.join("config.json"))?;

    let id = format!("ngram-sup-{}", std::process::id());
    let me = std::process::id();
    let events = Mutex::new(Vec::<Event>::new());
    let nnp = Mutex::new(None::<String>);
    let t0 = Instant::now();

    let stats = std::thread::scope(|s| -> Res<_> {
        s.spawn(move || serve_listener(listener));
        let sup = s.spawn(|| {
            let config = NotifyConfig {
                record_from: RecordFrom::FirstExecve,
                ..NotifyConfig::default()
            };
            let (mut tracer, init) =
                NotifyTracer::attach_in_tree(me, Duration::from_secs(30), config)
                    .map_err(|e| e.to_string())?;
            println!(
                "attached to init pid {init} after {:?}; sync_wake_up={}",
                t0.elapsed(),
                tracer.sync_wake_up()
            );
            let handler = |e: &Event| {
                let mut evs = events.lock().unwrap_or_else(|p| p.into_inner());
                if evs.is_empty() {
                    let st = std::fs::read_to_string(format!("/proc/{}/status", e.pid))
                        .unwrap_or_default();
                    let line = st.lines().find(|l| l.starts_with("NoNewPrivs:"));
                    *nnp.lock().unwrap_or_else(|p| p.into_inner()) = line.map(str::to_owned);
                }
                evs.push(*e);
                Decision::Continue
            };
            tracer.run(&handler).map_err(|e| e.to_string())
        });

        let mut container = ContainerBuilder::new(id.clone(), SyscallType::default())
            .with_root_path(&state_root)?
            .as_init(&bundle)
            .with_systemd(false)
            .with_detach(true)
            .build()
            .unwrap_or_else(|e| {
                // The supervisor and listener threads would wait for an init that is gone.
                println!("container build failed: {e}");
                std::process::exit(1);
            });
        println!("created after {:?}", t0.elapsed());
        container.start()?;
        let pid = container.pid().ok_or("no init pid")?;
        // init is not our child when libcontainer runs detached: wait for it to go.
        while Path::new(&format!("/proc/{pid}")).exists() {
            if let Ok(st) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
                if st.split_whitespace().nth(2) == Some("Z") {
                    let _ = nix::sys::wait::waitpid(pid, None);
                    break;
                }
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let stats = sup.join().map_err(|_| "supervisor panicked")??;
        container.delete(true)?;
        Ok(stats)
    })?;

    let events = events.into_inner().unwrap_or_else(|p| p.into_inner());
    println!("\nmode {mode}: {stats:?}");
    println!(
        "init at its first execve: {}",
        nnp.into_inner()
            .unwrap_or_else(|p| p.into_inner())
            .unwrap_or_default()
    );
    let mut by_tid: std::collections::BTreeMap<u32, Vec<&str>> = Default::default();
    for e in &events {
        by_tid
            .entry(e.tid)
            .or_default()
            .push(name(e.nr).unwrap_or("?"));
    }
    for (tid, calls) in &by_tid {
        println!("tid {tid}: {} calls: {}", calls.len(), calls.join(" "));
    }
    let _ = std::fs::remove_file(&sock_path);
    Ok(())
}
