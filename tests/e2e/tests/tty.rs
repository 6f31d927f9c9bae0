//! Terminals: `docker run -t` and `docker run -it` (through `script`, which gives the docker
//! client a pseudo-terminal of its own, as a user's shell would).

use std::process::Command;
use std::time::Duration;

use ngram_e2e::{setup, Running, BUSYBOX};

/// `docker run -t`: the container's stdout is a terminal (CR LF line ends, a pts).
#[test]
fn run_tty() {
    let Some(e) = setup("run_tty") else {
        return;
    };
    let c = e.container();
    let out = e.run(
        &c,
        &[
            "--rm",
            "-t",
            BUSYBOX,
            "sh",
            "-c",
            "test -t 1 && echo is-a-tty; tty; exit 6",
        ],
    );
    out.code_is(6);
    assert!(out.stdout.starts_with("is-a-tty\r\n"), "no terminal: {out}");
    assert!(
        out.stdout.contains("/dev/pts/0"),
        "tty is not /dev/pts/0: {out}"
    );
}

fn shell_quote(args: &[&str]) -> String {
    args.iter()
        .map(|a| format!("'{}'", a.replace('\'', r"'\''")))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `docker run -it` under a pseudo-terminal: typed input reaches the container's shell, its
/// answer comes back, and the exit code is passed through.
#[test]
fn run_interactive_tty() {
    let Some(e) = setup("run_interactive_tty") else {
        return;
    };
    let c = e.container();
    let mut args = vec!["docker"];
    args.extend(e.run_args(&c));
    args.extend_from_slice(&[
        "--rm",
        "-it",
        BUSYBOX,
        "sh",
        "-c",
        "test -t 0 && test -t 1 && echo in-a-tty; echo ready; read line; echo got-$line; exit 7",
    ]);
    let mut script = Command::new("script");
    // -q: no banner; -e: exit with the child's code; -c: the command; /dev/null: no typescript.
    script.args(["-qec", &shell_quote(&args), "/dev/null"]);
    let mut running = Running::spawn(script);
    running.wait_for_stdout("ready", Duration::from_secs(30));
    running.write_stdin(b"hello\r");
    running.wait_for_stdout("got-hello", Duration::from_secs(10));
    let out = running.wait(Duration::from_secs(30));
    out.code_is(7);
    assert!(
        out.stdout.contains("in-a-tty"),
        "stdin/stdout are not a terminal: {out}"
    );
}

/// `docker exec -it` under a pseudo-terminal: an interactive shell in a running container
/// reads commands, answers, and its exit code is passed through.
#[test]
fn exec_interactive_tty() {
    let Some(e) = setup("exec_interactive_tty") else {
        return;
    };
    let c = e.container();
    e.run_detached(&c, &[BUSYBOX, "sleep", "600"]);
    let cmd = shell_quote(&["docker", "exec", "-it", &c.name, "sh"]);
    let mut script = Command::new("script");
    script.args(["-qec", &cmd, "/dev/null"]);
    let mut running = Running::spawn(script);
    running.wait_for_stdout("# ", Duration::from_secs(30));
    running.write_stdin(b"echo hi-$((6*7)); tty\r");
    running.wait_for_stdout("hi-42", Duration::from_secs(10));
    running.write_stdin(b"exit 3\r");
    let out = running.wait(Duration::from_secs(30));
    out.code_is(3);
    assert!(
        out.stdout.contains("/dev/pts/"),
        "the shell has no terminal: {out}"
    );
    assert_eq!(e.inspect(&c, "{{.State.Running}}"), "true");
}
