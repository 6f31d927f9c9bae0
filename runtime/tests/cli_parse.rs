//! The exact command lines dockerd/containerd-shim-runc-v2 send parse into the right commands.

use clap::Parser;
use ngram_runtime::cli::LogFormat;
use ngram_runtime::{GlobalOpts, RuntimeCmd};

#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    global: GlobalOpts,
    #[command(subcommand)]
    cmd: RuntimeCmd,
}

fn parse(line: &str) -> Cli {
    let argv = std::iter::once("ngram-ids").chain(line.split_whitespace());
    match Cli::try_parse_from(argv) {
        Ok(c) => c,
        Err(e) => panic!("{line}: {e}"),
    }
}

const ID: &str = "585831b2fc922b02535c6521a92ca9ff8f0f37db6f1bb374c6fcb833ae0c6202";

#[test]
fn every_recorded_dockerd_line_parses() {
    let text = include_str!("data/dockerd-argv.txt");
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .collect();
    assert!(lines.len() > 10);
    for l in lines {
        let c = parse(l);
        assert_eq!(
            c.global.root.as_deref(),
            Some(std::path::Path::new("/var/run/docker/runtime-runc/moby"))
        );
        assert_eq!(c.global.log_format, LogFormat::Json);
        assert!(c.global.log.is_some());
    }
    // The recording covers every command and form the shim uses
    // (scripts/record-dockerd-argv.sh records it again).
    for form in [
        " create --bundle ",
        " --console-socket ",
        " start ",
        " kill --all ",
        " 37\n",
        " 64\n",
        " delete --force ",
        " exec --process ",
        " ps --format json ",
        " pause ",
        " resume ",
        " update --resources - ",
    ] {
        assert!(text.contains(form), "no recorded line has {form:?}");
    }
}

#[test]
fn create_with_console_socket() {
    let l = format!("--root /r --log /b/log.json --log-format json create --bundle /b --pid-file /b/init.pid --console-socket /tmp/pty1/pty.sock {ID}");
    match parse(&l).cmd {
        RuntimeCmd::Create(c) => {
            assert_eq!(c.bundle, std::path::PathBuf::from("/b"));
            assert_eq!(
                c.pid_file.as_deref(),
                Some(std::path::Path::new("/b/init.pid"))
            );
            assert!(c.console_socket.is_some());
            assert_eq!(c.container_id, ID);
            assert!(!c.no_pivot);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn create_no_pivot_no_new_keyring_systemd() {
    let c = parse(&format!(
        "--systemd-cgroup --debug create --bundle /b --no-pivot --no-new-keyring {ID}"
    ));
    assert!(c.global.systemd_cgroup && c.global.debug);
    match c.cmd {
        RuntimeCmd::Create(c) => assert!(c.no_pivot && c.no_new_keyring),
        other => panic!("{other:?}"),
    }
}

#[test]
fn exec_detach_tty_process() {
    let l = format!("--root /r --log /l --log-format json exec --process /tmp/runc-process1 --console-socket /tmp/p/pty.sock --detach --pid-file /b/x.pid {ID}");
    match parse(&l).cmd {
        RuntimeCmd::Exec(e) => {
            assert!(e.detach);
            assert_eq!(
                e.process.as_deref(),
                Some(std::path::Path::new("/tmp/runc-process1"))
            );
            assert!(e.console_socket.is_some());
            assert_eq!(e.container_id, ID);
        }
        other => panic!("{other:?}"),
    }
    match parse(&format!("exec --tty {ID} sh -c true")).cmd {
        RuntimeCmd::Exec(e) => {
            assert!(e.tty);
            assert_eq!(e.command, vec!["sh", "-c", "true"]);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn kill_signal_after_id_and_all() {
    match parse(&format!("kill {ID} 37")).cmd {
        RuntimeCmd::Kill(k) => {
            assert_eq!(k.signal, "37");
            assert!(!k.all);
        }
        other => panic!("{other:?}"),
    }
    match parse(&format!("kill --all {ID} 9")).cmd {
        RuntimeCmd::Kill(k) => assert!(k.all && k.signal == "9"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn delete_ps_update_pause_resume_state_features() {
    assert!(matches!(parse(&format!("delete --force {ID}")).cmd, RuntimeCmd::Delete(d) if d.force));
    assert!(
        matches!(parse(&format!("ps --format json {ID}")).cmd, RuntimeCmd::Ps(p) if p.format == "json")
    );
    assert!(matches!(parse(&format!("update --resources - {ID}")).cmd,
        RuntimeCmd::Update(u) if u.resources.as_deref() == Some(std::path::Path::new("-"))));
    assert!(
        matches!(parse(&format!("update --memory 67108864 --pids-limit 10 {ID}")).cmd,
        RuntimeCmd::Update(u) if u.memory == Some(67108864) && u.pids_limit == Some(10))
    );
    assert!(matches!(
        parse(&format!("pause {ID}")).cmd,
        RuntimeCmd::Pause(_)
    ));
    assert!(matches!(
        parse(&format!("resume {ID}")).cmd,
        RuntimeCmd::Resume(_)
    ));
    assert!(matches!(
        parse(&format!("state {ID}")).cmd,
        RuntimeCmd::State(_)
    ));
    assert!(matches!(parse("features").cmd, RuntimeCmd::Features(_)));
}

#[test]
fn stdio_belongs_to_container_only_for_create_and_exec() {
    assert!(parse(&format!("create --bundle /b {ID}"))
        .cmd
        .stdio_is_container());
    assert!(parse(&format!("exec --process /p {ID}"))
        .cmd
        .stdio_is_container());
    assert!(!parse(&format!("start {ID}")).cmd.stdio_is_container());
}

#[test]
fn default_root_is_used_without_flag() {
    let c = parse(&format!("state {ID}"));
    assert_eq!(
        c.global.root_dir(),
        std::path::PathBuf::from(ngram_runtime::cli::DEFAULT_ROOT)
    );
}

#[test]
fn runtime_args_from_daemon_json_come_first() {
    // daemon.json: "ngram-ids-train": {"runtimeArgs": ["--mode=train"]}
    let c = parse(&format!(
        "--mode=train --root /r --log /l --log-format json start {ID}"
    ));
    assert_eq!(c.global.mode, Some(ngram_runtime::cli::Mode::Train));
    assert!(matches!(c.cmd, RuntimeCmd::Start(_)));
    assert_eq!(parse(&format!("start {ID}")).global.mode, None);
}

#[test]
fn global_flags_go_before_the_subcommand_as_in_runc() {
    let argv = format!("ngram-ids state --root /r {ID}");
    assert!(Cli::try_parse_from(argv.split_whitespace()).is_err());
}

#[test]
fn the_tracer_is_auto_unless_named() {
    use ngram_runtime::cli::TracerArg;
    use ngram_supervisor::supervise::TracerKind;
    let c = parse(&format!("state {ID}"));
    assert_eq!(c.global.tracer, TracerArg::Auto);
    assert_eq!(c.global.tracer.kind(), None);
    for (word, kind) in [
        ("notify", TracerKind::Notify),
        ("ptrace", TracerKind::Ptrace),
        ("ebpf", TracerKind::Ebpf),
    ] {
        let c = parse(&format!("--tracer {word} state {ID}"));
        assert_eq!(c.global.tracer.kind(), Some(kind), "{word}");
    }
}
