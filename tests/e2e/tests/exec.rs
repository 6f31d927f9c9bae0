//! `docker exec`: exit codes, a terminal (`-t`), stdin (`-i`), environment and user.

use std::time::Duration;

use ngram_e2e::{setup, Container, E2e, BUSYBOX};

fn sleeper(e: &E2e) -> Container {
    let c = e.container();
    e.run_detached(&c, &[BUSYBOX, "sleep", "600"]);
    c
}

#[test]
fn exec_exit_codes() {
    let Some(e) = setup("exec_exit_codes") else {
        return;
    };
    let c = sleeper(&e);
    e.docker(&["exec", &c.name, "true"]).code_is(0);
    e.docker(&["exec", &c.name, "sh", "-c", "exit 5"])
        .code_is(5);
    e.docker(&["exec", &c.name, "false"]).code_is(1);
    // The container keeps running after its exec processes end.
    assert_eq!(e.inspect(&c, "{{.State.Running}}"), "true");
}

/// Output of an exec process is exactly its own (nothing from the runtime).
#[test]
fn exec_prints_only_the_processs_output() {
    let Some(e) = setup("exec_prints_only_the_processs_output") else {
        return;
    };
    let c = sleeper(&e);
    let out = e.docker(&["exec", &c.name, "sh", "-c", "echo hello; echo err >&2"]);
    out.success();
    assert_eq!(out.stdout, "hello\n", "{out}");
    assert_eq!(out.stderr, "err\n", "{out}");
}

/// `docker exec` of a command missing from `$PATH`: 126 and runc's wording.
#[test]
fn exec_missing_binary_is_126_executable_file_not_found() {
    let Some(e) = setup("exec_missing_binary_is_126_executable_file_not_found") else {
        return;
    };
    let c = sleeper(&e);
    let out = e.docker(&["exec", &c.name, "no-such-binary"]);
    out.code_is(126).only_the_runtime_error();
    // The docker 28 client prints this error on stdout, older ones on stderr.
    assert!(
        format!("{}{}", out.stdout, out.stderr).contains("executable file not found"),
        "error does not say \"executable file not found\": {out}"
    );
    assert_eq!(e.inspect(&c, "{{.State.Running}}"), "true");
}

/// `docker exec -i` passes stdin through, up to its end.
#[test]
fn exec_interactive_stdin() {
    let Some(e) = setup("exec_interactive_stdin") else {
        return;
    };
    let c = sleeper(&e);
    let out = e.docker_stdin(
        &[
            "exec",
            "-i",
            &c.name,
            "sh",
            "-c",
            "read first; echo got:$first; cat",
        ],
        b"line one\nline two\nline three\n",
    );
    out.success();
    assert_eq!(out.stdout, "got:line one\nline two\nline three\n", "{out}");
}

/// `docker exec -t` gives the process a terminal (output lines end in CR LF).
#[test]
fn exec_tty() {
    let Some(e) = setup("exec_tty") else {
        return;
    };
    let c = sleeper(&e);
    let out = e.docker(&[
        "exec",
        "-t",
        &c.name,
        "sh",
        "-c",
        "test -t 0 && test -t 1 && echo is-a-tty; tty",
    ]);
    out.success();
    assert!(
        out.stdout.starts_with("is-a-tty\r\n/dev/pts/"),
        "no terminal: {out}"
    );
    assert!(
        out.stdout.ends_with("\r\n") && out.stdout.lines().count() == 2,
        "{out}"
    );
}

/// `docker exec -e` and `-w` and `-u` reach the process.
#[test]
fn exec_env_workdir_user() {
    let Some(e) = setup("exec_env_workdir_user") else {
        return;
    };
    let c = sleeper(&e);
    let out = e.docker(&[
        "exec",
        "-e",
        "NGRAM_E2E=yes",
        "-w",
        "/tmp",
        "-u",
        "65534:65534",
        &c.name,
        "sh",
        "-c",
        "echo $NGRAM_E2E $(pwd) $(id -u) $(id -g)",
    ]);
    out.success();
    assert_eq!(out.out(), "yes /tmp 65534 65534", "{out}");
}

/// Several exec processes in parallel with the container's own process.
#[test]
fn exec_detached_process_shows_in_top() {
    let Some(e) = setup("exec_detached_process_shows_in_top") else {
        return;
    };
    let c = sleeper(&e);
    e.docker(&["exec", "-d", &c.name, "sleep", "555"]).success();
    e.wait_until(
        "the detached exec process runs",
        Duration::from_secs(10),
        || e.docker(&["top", &c.name]).stdout.contains("sleep 555"),
    );
}
