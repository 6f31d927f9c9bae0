//! Errors of the runtime reach the user through dockerd (containerd reads them from the
//! runtime's `--log`), naming what failed, and the container is not left behind half made.

use ngram_e2e::{setup, Output, BUSYBOX};

fn all_output(out: &Output) -> String {
    format!("{}{}", out.stdout, out.stderr)
}

/// A sysctl the kernel does not have (Docker lets any `net.*` through): `docker run` fails
/// with the runtime's error, which names the sysctl.
#[test]
fn runtime_error_names_the_failing_setting() {
    let Some(e) = setup("runtime_error_names_the_failing_setting") else {
        return;
    };
    let c = e.container();
    let out = e.run(
        &c,
        &["--sysctl", "net.ngram.nonexistent=1", BUSYBOX, "true"],
    );
    assert!(
        matches!(out.code, Some(125..=127)),
        "docker run with a bad sysctl did not fail as a start error: {out}"
    );
    let error = out
        .stderr
        .lines()
        .find(|l| l.contains("Error response from daemon"))
        .unwrap_or_else(|| panic!("no daemon error: {out}"));
    assert!(
        error.contains("net.ngram.nonexistent") || error.contains("net/ngram/nonexistent"),
        "the error does not name the sysctl: {error}"
    );
    assert!(
        !error.contains("unable to retrieve OCI runtime error"),
        "containerd found no error in the runtime's log: {error}"
    );
    // dockerd keeps the failed container as created; it must not be running.
    assert_eq!(e.inspect(&c, "{{.State.Running}}"), "false");
}

/// Same through `docker start` of a created container: the error reaches `docker start`.
#[test]
fn start_error_reaches_the_user() {
    let Some(e) = setup("start_error_reaches_the_user") else {
        return;
    };
    let c = e.container();
    let mut args = e.run_args(&c);
    args[0] = "create";
    args.extend_from_slice(&[BUSYBOX, "no-such-binary"]);
    e.docker(&args).success();
    let out = e.docker(&["start", "--attach", &c.name]);
    assert_ne!(out.code, Some(0), "{out}");
    let all = format!("{}{}", out.stdout, out.stderr);
    assert!(all.contains("executable file not found"), "{out}");
    assert_eq!(e.inspect(&c, "{{.State.Running}}"), "false");
}

/// `docker exec -w` of a missing directory: 126, and the error names the directory.
#[test]
fn exec_error_names_the_missing_workdir() {
    let Some(e) = setup("exec_error_names_the_missing_workdir") else {
        return;
    };
    let c = e.container();
    e.run_detached(&c, &[BUSYBOX, "sleep", "600"]);
    let out = e.docker(&["exec", "-w", "/ngram-nonexistent", &c.name, "pwd"]);
    out.code_is(126);
    assert!(
        all_output(&out).contains("/ngram-nonexistent"),
        "the error does not name the working directory: {out}"
    );
    assert_eq!(e.inspect(&c, "{{.State.Running}}"), "true");
}

/// With a terminal (`-t`, the console-socket path), a start error still reaches the user
/// with runc's wording and exit code.
#[test]
fn tty_start_error_reaches_the_user() {
    let Some(e) = setup("tty_start_error_reaches_the_user") else {
        return;
    };
    let c = e.container();
    let out = e.run(&c, &["--rm", "-t", BUSYBOX, "no-such-binary"]);
    out.code_is(127);
    assert!(
        all_output(&out).contains("executable file not found"),
        "{out}"
    );
    let c = e.container();
    e.run_detached(&c, &[BUSYBOX, "sleep", "600"]);
    let out = e.docker(&["exec", "-t", &c.name, "no-such-binary"]);
    out.code_is(126);
    assert!(
        all_output(&out).contains("executable file not found"),
        "{out}"
    );
}
