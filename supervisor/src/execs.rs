//! `docker exec` processes: the supervisor accepts `ngram-ids exec`'s announcements on its
//! control socket ([`crate::control`]) and traces each exec process, with the container's
//! session, on a thread of its own.

use std::os::fd::AsFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::Duration;

use nix::poll::{PollFd, PollFlags, PollTimeout};

use ngram_profiler::alert::NoticeKind;

use crate::control::{self, ControlError, Request, Response};
use crate::done::Done;
use crate::guard::GuardLink;
use crate::handshake::{wait_for_comm, wake_when_seized, WAIT_COMM};
use crate::ptrace::PtraceTracer;
use crate::session::Session;
use crate::supervise::{kill_container, notify_config, ptrace_config, Plan, TracerKind};
use crate::{discover, sys, Handler, NotifyTracer, Tracer};

/// Accept requests on the control socket until the container is done, each served by its own
/// thread: `ngram-ids exec`'s (the thread then traces the exec process, its calls answered by
/// `handler`: the session, or the seccomp hybrid's), and the guard's (the thread watches it:
/// [`GuardLink`]).
pub(crate) fn accept_execs(
    plan: &Plan,
    session: &Session<'_>,
    listener: &UnixListener,
    done: &Done,
    guard: &GuardLink,
    handler: &dyn Handler,
) {
    std::thread::scope(|s| {
        while !done.is_set() {
            match listener.accept() {
                Ok((stream, _)) => {
                    s.spawn(move || match control::receive(&stream, Duration::from_secs(10)) {
                        Ok(Request::Guard) => guard.watch(stream, done, |pid| {
                            kill_container(plan.init_pid);
                            session.notice(NoticeKind::GuardDied { pid }, String::new());
                        }),
                        Ok(Request::AttachTree { runtime_pid }) => {
                            match attach_exec(stream, runtime_pid, plan, session) {
                                Ok(Some(mut tracer)) => {
                                    if let Err(e) = tracer.run(handler) {
                                        tracing::error!(id = %plan.id, "exec tracer failed: {e}");
                                    }
                                }
                                Ok(None) => {}
                                Err(e) => tracing::error!(id = %plan.id, "exec attach: {e}"),
                            }
                        }
                        Err(ControlError::BadRequest(line)) => {
                            let answer = Response::Error(format!("bad request {line:?}"));
                            let _ = control::reply(&stream, &answer);
                        }
                        Err(e) => tracing::error!(id = %plan.id, "control socket: {e}"),
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    let mut fds = [
                        PollFd::new(listener.as_fd(), PollFlags::POLLIN),
                        PollFd::new(done.fd(), PollFlags::POLLIN),
                    ];
                    let _ = nix::poll::poll(&mut fds, PollTimeout::NONE);
                }
                Err(e) => {
                    tracing::error!(id = %plan.id, "accept on the exec socket: {e}");
                    done.sleep(Duration::from_millis(100));
                }
            }
        }
    });
}

/// How long an exec process may take to load its filter.
const EXEC_ATTACH_TIMEOUT: Duration = Duration::from_secs(30);

/// One [`Request::AttachTree`], sent by `ngram-ids exec` (pid PID) before it starts the
/// process: the exec process, a descendant of PID, loads its filter and waits in its next call
/// while libcontainer waits for it to `execve`, so the supervisor finds its listener among
/// PID's descendants. Answers [`Response::Ok`] once the listener is taken, or an error; on failure
/// the descendants holding a listener are killed (they must not run untraced, and they would
/// wait forever).
fn attach_exec(
    stream: UnixStream,
    root: u32,
    plan: &Plan,
    session: &Session<'_>,
) -> Result<Option<Box<dyn Tracer + Send>>, ControlError> {
    if plan.tracer == TracerKind::Ebpf && !plan.hybrid() {
        // Nothing to take: the kernel counts the exec process in the container's cgroup.
        tracing::info!(runtime = root, "exec process counted in the kernel (ebpf)");
        control::reply(&stream, &Response::Ok)?;
        return Ok(None);
    }
    if plan.tracer == TracerKind::Ptrace {
        // The exec process names itself WAIT_COMM and waits for a tracer before it loads its
        // filter: find it; the caller's thread seizes it when it runs the tracer.
        return match wait_for_comm(root, WAIT_COMM, EXEC_ATTACH_TIMEOUT) {
            Some(pid) => {
                tracing::info!(runtime = root, pid, "tracing exec process (ptrace)");
                session.add_operator(pid);
                std::thread::spawn(move || {
                    wake_when_seized(pid, |waited| waited > EXEC_ATTACH_TIMEOUT)
                });
                control::reply(&stream, &Response::Ok)?;
                Ok(Some(Box::new(PtraceTracer::new(&[pid], ptrace_config()))))
            }
            None => {
                control::reply(&stream, &Response::Error(format!("no exec process of runtime {root} waited for a tracer within {EXEC_ATTACH_TIMEOUT:?}")))?;
                Ok(None)
            }
        };
    }
    match NotifyTracer::attach_in_tree(root, EXEC_ATTACH_TIMEOUT, notify_config(plan)) {
        Ok((t, pid)) => {
            tracing::info!(runtime = root, pid, "tracing exec process");
            session.add_operator(pid);
            control::reply(&stream, &Response::Ok)?;
            Ok(Some(Box::new(t)))
        }
        Err(e) => {
            for pid in discover::descendants(root) {
                if discover::notify_fds(pid).is_ok_and(|f| !f.is_empty()) {
                    let _ = sys::tgkill(pid, pid, libc::SIGKILL);
                }
            }
            control::reply(&stream, &Response::Error(e.to_string()))?;
            Ok(None)
        }
    }
}
