//! Container lifecycle through dockerd: run, exit codes, logs, stop, kill, restart, pause, rm.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use ngram_e2e::{host_cgroup_file, run_cmd, setup, BUSYBOX};

/// The suite really runs containers with the runtime under test: dockerd records it, and the
/// runtime's own `state` command (with the `--root` dockerd gives it) knows the container,
/// while runc does not know a container of another runtime.
#[test]
fn containers_use_the_runtime_under_test() {
    let Some(e) = setup("containers_use_the_runtime_under_test") else {
        return;
    };
    let c = e.container();
    e.run_detached(&c, &[BUSYBOX, "sleep", "600"]);
    assert_eq!(e.inspect(&c, "{{.HostConfig.Runtime}}"), e.runtime());
    let id = e.inspect(&c, "{{.Id}}");
    // dockerd 20.10 passes --root /var/run/docker/runtime-runc/moby to every runtime; later
    // versions use runtime-NAME.
    let root = [e.runtime(), "runc"]
        .iter()
        .map(|r| format!("/var/run/docker/runtime-{r}/moby"))
        .find(|root| Path::new(root).join(&id).exists())
        .unwrap_or_else(|| panic!("no runtime state directory holds container {id}"));
    let runtimes = e.docker(&["info", "--format", "{{json .Runtimes}}"]);
    let runtimes: serde_json::Value = serde_json::from_str(runtimes.success().out()).unwrap();
    let binary = runtimes[e.runtime()]["path"]
        .as_str()
        .unwrap_or_else(|| panic!("no path for runtime {} in {runtimes}", e.runtime()))
        .to_owned();

    let mut state = Command::new(&binary);
    state.args(["--root", &root, "state", &id]);
    let out = run_cmd(state, b"", Duration::from_secs(10));
    out.success();
    let state: serde_json::Value = serde_json::from_str(out.out())
        .unwrap_or_else(|err| panic!("`{binary} state` is not JSON ({err}): {out}"));
    assert_eq!(state["status"], "running", "{out}");
    assert_eq!(state["pid"].as_u64(), Some(u64::from(e.pid(&c))), "{out}");
    if e.runtime() != "runc" {
        let mut runc = Command::new("runc");
        runc.args(["--root", &root, "state", &id]);
        let out = run_cmd(runc, b"", Duration::from_secs(10));
        assert_ne!(
            out.code,
            Some(0),
            "runc knows the container: was it made by runc? {out}"
        );
    }
}

/// `docker run echo hello` prints exactly the container's output: nothing from the runtime.
#[test]
fn run_prints_only_the_containers_output() {
    let Some(e) = setup("run_prints_only_the_containers_output") else {
        return;
    };
    let c = e.container();
    let out = e.run(&c, &["--rm", BUSYBOX, "echo", "hello"]);
    out.success();
    assert_eq!(
        out.stdout, "hello\n",
        "stdout of `docker run echo hello`: {out}"
    );
    assert_eq!(out.stderr, "", "stderr of `docker run echo hello`: {out}");
}

/// A container's stderr reaches the client's stderr, and stdout stays clean.
#[test]
fn run_keeps_stdout_and_stderr_apart() {
    let Some(e) = setup("run_keeps_stdout_and_stderr_apart") else {
        return;
    };
    let c = e.container();
    let out = e.run(&c, &["--rm", BUSYBOX, "sh", "-c", "echo out; echo err >&2"]);
    out.success();
    assert_eq!(out.stdout, "out\n", "{out}");
    assert_eq!(out.stderr, "err\n", "{out}");
}

#[test]
fn run_exit_code_0() {
    let Some(e) = setup("run_exit_code_0") else {
        return;
    };
    let c = e.container();
    e.run(&c, &["--rm", BUSYBOX, "true"]).code_is(0);
}

#[test]
fn run_exit_code_3() {
    let Some(e) = setup("run_exit_code_3") else {
        return;
    };
    let c = e.container();
    e.run(&c, &["--rm", BUSYBOX, "sh", "-c", "exit 3"])
        .code_is(3);
}

/// A command missing from `$PATH`: exit code 127 and runc's wording.
#[test]
fn run_missing_binary_is_127_executable_file_not_found() {
    let Some(e) = setup("run_missing_binary_is_127_executable_file_not_found") else {
        return;
    };
    let c = e.container();
    let out = e.run(&c, &["--rm", BUSYBOX, "no-such-binary"]);
    out.code_is(127).only_the_runtime_error();
    assert!(
        out.stderr.contains("executable file not found"),
        "error does not say \"executable file not found\": {out}"
    );
    assert!(
        out.stderr.contains("no-such-binary"),
        "error does not name the command: {out}"
    );
}

/// `docker run -d` + `docker logs` (both streams) + `docker wait` with the exit code.
#[test]
fn detached_run_logs_and_wait() {
    let Some(e) = setup("detached_run_logs_and_wait") else {
        return;
    };
    let c = e.container();
    e.run_detached(
        &c,
        &[
            BUSYBOX,
            "sh",
            "-c",
            "echo to-stdout; echo to-stderr >&2; sleep 1; exit 4",
        ],
    );
    let wait = e.docker(&["wait", &c.name]);
    wait.success();
    assert_eq!(wait.out(), "4", "docker wait: {wait}");
    let (out, err) = e.logs(&c);
    assert_eq!(out, "to-stdout\n", "docker logs stdout");
    assert_eq!(err, "to-stderr\n", "docker logs stderr");
    assert_eq!(e.inspect(&c, "{{.State.ExitCode}}"), "4");
}

/// `docker stop` on a process that ignores SIGTERM: SIGKILL after the timeout (exit 137).
#[test]
fn stop_kills_after_timeout_when_term_is_ignored() {
    let Some(e) = setup("stop_kills_after_timeout_when_term_is_ignored") else {
        return;
    };
    let c = e.container();
    e.run_detached(
        &c,
        &[
            BUSYBOX,
            "sh",
            "-c",
            "trap '' TERM; echo ready; while :; do sleep 0.2; done",
        ],
    );
    e.wait_for_log(&c, "ready", Duration::from_secs(10));
    let stop = e.docker(&["stop", "--time", "2", &c.name]);
    stop.success();
    assert!(
        stop.elapsed >= Duration::from_millis(1900),
        "stopped before the 2 s timeout although SIGTERM is ignored: {stop}"
    );
    assert!(
        stop.elapsed < Duration::from_secs(15),
        "SIGKILL did not end it soon after the timeout: {stop}"
    );
    assert_eq!(e.inspect(&c, "{{.State.Running}}"), "false");
    assert_eq!(
        e.inspect(&c, "{{.State.ExitCode}}"),
        "137",
        "killed by SIGKILL"
    );
}

/// `docker stop` on a process that traps SIGTERM: it exits on TERM, with its own code.
#[test]
fn stop_sends_sigterm_first() {
    let Some(e) = setup("stop_sends_sigterm_first") else {
        return;
    };
    let c = e.container();
    e.run_detached(
        &c,
        &[
            BUSYBOX,
            "sh",
            "-c",
            "trap 'echo got-term; exit 42' TERM; echo ready; while :; do sleep 0.2; done",
        ],
    );
    e.wait_for_log(&c, "ready", Duration::from_secs(10));
    let stop = e.docker(&["stop", "--time", "30", &c.name]);
    stop.success();
    assert!(
        stop.elapsed < Duration::from_secs(10),
        "the container did not exit on SIGTERM (waited for the 30 s timeout?): {stop}"
    );
    assert_eq!(
        e.inspect(&c, "{{.State.ExitCode}}"),
        "42",
        "exit code of the TERM trap"
    );
    let (out, _) = e.logs(&c);
    assert!(out.contains("got-term"), "TERM trap did not run: {out:?}");
}

/// `docker kill -s USR1` reaches the container's process, which keeps running.
#[test]
fn kill_with_a_normal_signal() {
    let Some(e) = setup("kill_with_a_normal_signal") else {
        return;
    };
    let c = e.container();
    e.run_detached(
        &c,
        &[
            BUSYBOX,
            "sh",
            "-c",
            "trap 'echo got-usr1' USR1; echo ready; while :; do sleep 0.2; done",
        ],
    );
    e.wait_for_log(&c, "ready", Duration::from_secs(10));
    e.docker(&["kill", "--signal", "USR1", &c.name]).success();
    e.wait_for_log(&c, "got-usr1", Duration::from_secs(10));
    assert_eq!(e.inspect(&c, "{{.State.Running}}"), "true");
}

/// `docker kill -s SIGRTMIN+3` (37 in Docker's numbering), `-s 40` and `-s SIGRTMAX` (64):
/// real-time signals reach the container's traps.
#[test]
fn kill_with_a_realtime_signal() {
    let Some(e) = setup("kill_with_a_realtime_signal") else {
        return;
    };
    let c = e.container();
    e.run_detached(
        &c,
        &[
            BUSYBOX,
            "sh",
            "-c",
            "trap 'echo got-rt37' 37; trap 'echo got-rt40' 40; trap 'echo got-rt64' 64; \
             echo ready; while :; do sleep 0.2; done",
        ],
    );
    e.wait_for_log(&c, "ready", Duration::from_secs(10));
    e.docker(&["kill", "--signal", "SIGRTMIN+3", &c.name])
        .success();
    e.wait_for_log(&c, "got-rt37", Duration::from_secs(10));
    e.docker(&["kill", "--signal", "40", &c.name]).success();
    e.wait_for_log(&c, "got-rt40", Duration::from_secs(10));
    e.docker(&["kill", "--signal", "SIGRTMAX", &c.name])
        .success();
    e.wait_for_log(&c, "got-rt64", Duration::from_secs(10));
    assert_eq!(e.inspect(&c, "{{.State.Running}}"), "true");
}

/// Plain `docker kill` (SIGKILL): exit code 137.
#[test]
fn kill_default_is_sigkill() {
    let Some(e) = setup("kill_default_is_sigkill") else {
        return;
    };
    let c = e.container();
    e.run_detached(&c, &[BUSYBOX, "sleep", "600"]);
    e.docker(&["kill", &c.name]).success();
    e.wait_until("the container stopped", Duration::from_secs(10), || {
        e.inspect(&c, "{{.State.Running}}") == "false"
    });
    assert_eq!(e.inspect(&c, "{{.State.ExitCode}}"), "137");
}

/// `docker restart` runs the command again in a new process.
#[test]
fn restart_runs_the_command_again() {
    let Some(e) = setup("restart_runs_the_command_again") else {
        return;
    };
    let c = e.container();
    e.run_detached(
        &c,
        &[
            BUSYBOX,
            "sh",
            "-c",
            "trap 'exit 0' TERM; echo started; while :; do sleep 0.2; done",
        ],
    );
    e.wait_for_log(&c, "started", Duration::from_secs(10));
    let pid_before = e.pid(&c);
    let started_before = e.inspect(&c, "{{.State.StartedAt}}");
    e.docker(&["restart", "--time", "10", &c.name]).success();
    assert_eq!(e.inspect(&c, "{{.State.Running}}"), "true");
    e.wait_until("the command ran twice", Duration::from_secs(10), || {
        e.logs(&c).0.matches("started").count() == 2
    });
    assert_ne!(e.pid(&c), pid_before, "same init process after restart");
    assert_ne!(e.inspect(&c, "{{.State.StartedAt}}"), started_before);
}

/// `--restart on-failure:2`: dockerd restarts a failing container twice.
#[test]
fn restart_policy_on_failure() {
    let Some(e) = setup("restart_policy_on_failure") else {
        return;
    };
    let c = e.container();
    e.run(
        &c,
        &[
            "-d",
            "--restart",
            "on-failure:2",
            BUSYBOX,
            "sh",
            "-c",
            "echo attempt; exit 1",
        ],
    )
    .success();
    e.wait_until(
        "restarted twice and stopped",
        Duration::from_secs(30),
        || {
            e.inspect(
                &c,
                "{{.RestartCount}} {{.State.Running}} {{.State.Restarting}}",
            ) == "2 false false"
        },
    );
    assert_eq!(e.logs(&c).0.matches("attempt").count(), 3);
    assert_eq!(e.inspect(&c, "{{.State.ExitCode}}"), "1");
}

/// `docker pause` freezes the container (state Paused, output stops); `unpause` resumes it.
#[test]
fn pause_and_unpause() {
    let Some(e) = setup("pause_and_unpause") else {
        return;
    };
    let c = e.container();
    e.run_detached(
        &c,
        &[
            BUSYBOX,
            "sh",
            "-c",
            "i=0; while :; do i=$((i+1)); echo tick $i; sleep 0.1; done",
        ],
    );
    e.wait_for_log(&c, "tick 3", Duration::from_secs(10));
    e.docker(&["pause", &c.name]).success();
    assert_eq!(
        e.inspect(&c, "{{.State.Status}} {{.State.Paused}}"),
        "paused true"
    );
    // Output written just before the freeze may still be on its way to the log.
    std::thread::sleep(Duration::from_millis(500));
    let frozen = e.logs(&c).0.lines().count();
    std::thread::sleep(Duration::from_millis(1500));
    let later = e.logs(&c).0.lines().count();
    assert_eq!(frozen, later, "the counter advanced while paused");
    let exec = e.docker(&["exec", &c.name, "true"]);
    assert_ne!(
        exec.code,
        Some(0),
        "exec into a paused container succeeded: {exec}"
    );

    e.docker(&["unpause", &c.name]).success();
    assert_eq!(
        e.inspect(&c, "{{.State.Status}} {{.State.Paused}}"),
        "running false"
    );
    e.wait_until(
        "the counter advanced after unpause",
        Duration::from_secs(10),
        || e.logs(&c).0.lines().count() >= later + 3,
    );
}

/// `docker run --rm`: the container is gone once it exited.
#[test]
fn rm_removes_the_container() {
    let Some(e) = setup("rm_removes_the_container") else {
        return;
    };
    let c = e.container();
    e.run(&c, &["--rm", BUSYBOX, "true"]).success();
    e.wait_until("the container is removed", Duration::from_secs(10), || {
        let out = e.docker(&["container", "inspect", &c.name]);
        out.code != Some(0) && out.stderr.contains("No such container")
    });
    let ps = e.docker(&["ps", "--all", "--quiet", "--filter", &format!("name=^{c}$")]);
    assert_eq!(ps.success().out(), "", "docker ps -a still lists it");
}

/// A stopped container can be started again and removed (create/start/delete cycle).
#[test]
fn create_start_and_remove() {
    let Some(e) = setup("create_start_and_remove") else {
        return;
    };
    let c = e.container();
    let mut args = e.run_args(&c);
    args[0] = "create";
    args.extend_from_slice(&[BUSYBOX, "sh", "-c", "echo run-once"]);
    e.docker(&args).success();
    assert_eq!(e.inspect(&c, "{{.State.Status}}"), "created");
    let start = e.docker(&["start", "--attach", &c.name]);
    start.success();
    assert_eq!(start.stdout, "run-once\n", "{start}");
    e.docker(&["start", "--attach", &c.name]).success();
    assert_eq!(e.logs(&c).0, "run-once\nrun-once\n");
    e.docker(&["rm", &c.name]).success();
    let gone = e.docker(&["container", "inspect", &c.name]);
    assert_ne!(gone.code, Some(0), "still there after docker rm: {gone}");
}

/// `docker rm -f` of a running container kills it and the runtime deletes everything it
/// made: the processes, the cgroups and its state directory.
#[test]
fn rm_force_cleans_up_processes_cgroups_and_state() {
    let Some(e) = setup("rm_force_cleans_up_processes_cgroups_and_state") else {
        return;
    };
    let c = e.container();
    e.run_detached(&c, &[BUSYBOX, "sh", "-c", "sleep 600 & sleep 600"]);
    let pid = e.pid(&c);
    let id = e.inspect(&c, "{{.Id}}");
    let memory_cgroup = host_cgroup_file(pid, ("memory", ""), "");
    let pids_cgroup = host_cgroup_file(pid, ("pids", ""), "");
    let state = [e.runtime(), "runc"]
        .iter()
        .map(|r| format!("/var/run/docker/runtime-{r}/moby/{id}"))
        .find(|dir| Path::new(dir).exists())
        .unwrap_or_else(|| panic!("no runtime state directory for {id}"));
    assert!(memory_cgroup.exists(), "{}", memory_cgroup.display());
    e.docker(&["rm", "--force", &c.name]).success();
    e.wait_until("the init process is gone", Duration::from_secs(10), || {
        !Path::new(&format!("/proc/{pid}")).exists()
    });
    e.wait_until("the cgroups are removed", Duration::from_secs(10), || {
        !memory_cgroup.exists() && !pids_cgroup.exists()
    });
    assert!(!Path::new(&state).exists(), "runtime state left at {state}");
    let gone = e.docker(&["container", "inspect", &c.name]);
    assert_ne!(gone.code, Some(0), "{gone}");
}

/// `docker run -i` (no terminal) passes stdin through to its end.
#[test]
fn run_interactive_stdin() {
    let Some(e) = setup("run_interactive_stdin") else {
        return;
    };
    let c = e.container();
    let mut args = e.run_args(&c);
    args.extend_from_slice(&[
        "--rm",
        "-i",
        BUSYBOX,
        "sh",
        "-c",
        "read first; echo got:$first; cat",
    ]);
    let out = e.docker_stdin(&args, b"one\ntwo\nthree\n");
    out.success();
    assert_eq!(out.stdout, "got:one\ntwo\nthree\n", "{out}");
}

/// Output written just before the container exits is not lost (a 589 KB stream).
#[test]
fn run_output_is_complete() {
    let Some(e) = setup("run_output_is_complete") else {
        return;
    };
    let c = e.container();
    let out = e.run(&c, &["--rm", BUSYBOX, "seq", "1", "100000"]);
    out.success();
    let expected: String = (1..=100_000).map(|i| format!("{i}\n")).collect();
    assert_eq!(out.stdout.len(), expected.len(), "bytes of output");
    assert!(
        out.stdout == expected,
        "the output differs from seq 1 100000"
    );
}

/// Eight `docker run`s at once (concurrent create/start/delete under the same `--root`) all
/// succeed with their own output.
#[test]
fn parallel_runs() {
    let Some(e) = setup("parallel_runs") else {
        return;
    };
    let containers: Vec<_> = (0..8).map(|_| e.container()).collect();
    let outputs: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = containers
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let e = &e;
                scope.spawn(move || {
                    let word = format!("container-{i}");
                    (word.clone(), e.run(c, &["--rm", BUSYBOX, "echo", &word]))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (word, out) in outputs {
        out.success();
        assert_eq!(out.stdout, format!("{word}\n"), "{out}");
    }
}
