//! The trace readers on the fixtures in `tests/data/traces/`: what they read, and the
//! `file:line` errors they give on bad input.

use std::path::{Path, PathBuf};

use ngram_profiler::syscalls::Arch;
use ngram_profiler::trace::{
    parse_native, read_native, read_path, read_strace, read_unm, Event, Format, NativeReader,
    NativeWriter, TraceError,
};

fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data/traces")
        .join(rel)
}

fn calls(arch: Arch, events: &[Event]) -> Vec<(u32, &'static str)> {
    events
        .iter()
        .map(|e| (e.tid, arch.name(e.nr).unwrap_or("?")))
        .collect()
}

#[test]
fn strace_threads_tt() {
    let t = read_strace(&data("strace/nginx-threads-tt.strace")).unwrap();
    assert_eq!(t.arch, Arch::X86_64);
    assert_eq!(
        calls(t.arch, &t.events),
        vec![
            (4100, "execve"),
            (4100, "brk"),
            (4100, "openat"),
            (4100, "fstat"),
            (4100, "mmap"),
            (4100, "close"),
            (4100, "write"),
            (4100, "clone3"),
            (4101, "set_robust_list"),
            (4100, "futex"),
            (4101, "read"),
            (4101, "openat"),
            (4101, "futex"),
            (4100, "rt_sigreturn"),
            (4101, "epoll_wait"),
            (4100, "kill"),
            (4101, "exit"),
            (4100, "exit_group"),
        ]
    );
    let sec = 1_000_000_000u64;
    assert_eq!(t.events[0].ts_ns, Some(36_902 * sec + 100_000));
    // An unfinished call is stamped at its start.
    assert_eq!(t.events[8].ts_ns, Some(36_902 * sec + 1_300_000));
    assert!(t.events.windows(2).all(|w| w[0].ts_ns <= w[1].ts_ns));
}

#[test]
fn strace_single_process_ttt() {
    let t = read_strace(&data("strace/single-ttt.strace")).unwrap();
    assert_eq!(
        calls(t.arch, &t.events),
        vec![
            (0, "execve"),
            (0, "openat"),
            (0, "read"),
            (0, "write"),
            (0, "close"),
            (0, "exit_group"),
        ]
    );
    assert_eq!(t.events[0].ts_ns, Some(1_700_000_000_000_001_000));
}

#[test]
fn strace_stderr_form_joins_the_leader() {
    let t = read_strace(&data("strace/stderr-pid-prefix.strace")).unwrap();
    assert_eq!(
        calls(t.arch, &t.events),
        vec![
            (7000, "execve"),
            (7000, "rt_sigaction"),
            (7000, "clone"),
            (7001, "execve"),
            (7000, "wait4"),
            (7001, "getuid"),
            (7001, "exit_group"),
            (7000, "exit_group"),
        ]
    );
}

#[test]
fn strace_killed_trace_counts_a_cut_last_call() {
    let t = read_strace(&data("strace/killed-cut-last-line.strace")).unwrap();
    assert_eq!(
        calls(t.arch, &t.events),
        vec![(9000, "read"), (9000, "write"), (9001, "read")]
    );
}

#[test]
fn strace_real_stderr_output_with_vfork() {
    // `strace -f sh -c 'id >/dev/null; true' 2>FILE` as strace 6.1 wrote it: unprefixed lines
    // before the vfork and after the child exits, a tracer message inside the vfork line.
    let t = read_strace(&data("strace/real-stderr-vfork.strace")).unwrap();
    assert_eq!(t.events.len(), 264);
    let first: Vec<u32> = t.events.iter().map(|e| e.tid).take(3).collect();
    assert_eq!(first, vec![20246, 20246, 20246]);
    let mut tids: Vec<u32> = t.events.iter().map(|e| e.tid).collect();
    tids.sort_unstable();
    tids.dedup();
    assert_eq!(tids, vec![20246, 20247]);
    let last = t.events.last().unwrap();
    assert_eq!(
        (last.tid, Arch::X86_64.name(last.nr)),
        (20246, Some("exit_group"))
    );
}

#[test]
fn unm_streams_per_pid() {
    let t = read_unm(&data("unm/sendmail-two-procs.int")).unwrap();
    assert_eq!(t.arch, Arch::Opaque);
    let got: Vec<(u32, u16)> = t.events.iter().map(|e| (e.tid, e.nr)).collect();
    assert_eq!(
        got,
        vec![
            (551, 4),
            (551, 2),
            (551, 66),
            (552, 5),
            (551, 5),
            (552, 3),
            (552, 1),
            (551, 6),
            (551, 1)
        ]
    );
}

#[test]
fn native_fixture_written_from_the_spec() {
    // The fixture was written by hand (a script following docs/trace-formats.md), so this
    // checks the reader against the document, not against the writer.
    let path = data("native/two-threads.ngt");
    let t = read_native(&path).unwrap();
    let t0 = 1_700_000_000_000_000_000u64;
    let ev = |tid, nr, ts_ns| Event { tid, nr, ts_ns };
    assert_eq!(t.arch, Arch::X86_64);
    assert_eq!(
        t.events,
        vec![
            ev(100, 59, Some(t0 + 1000)),
            ev(100, 12, Some(t0 + 2500)),
            ev(101, 0, Some(t0 + 2400)),
            ev(101, 435, None),
            ev(100, 231, Some(t0 + 10_000_000)),
        ]
    );
    let r = NativeReader::open(&path).unwrap();
    assert_eq!(r.header().meta, r#"{"container":"c0ffee","image":"nginx"}"#);
    assert_eq!(r.header().start_ns, t0);

    let mut w = NativeWriter::with_meta(
        Vec::new(),
        Arch::X86_64,
        t0,
        r#"{"container":"c0ffee","image":"nginx"}"#,
    )
    .unwrap();
    for e in &t.events {
        w.write_event(e).unwrap();
    }
    // The writer produces the same bytes, but for the version: the fixture is a version 1
    // trace (before argument records), which this reader still reads; the writer writes 2.
    let mut fixture = std::fs::read(&path).unwrap();
    assert_eq!(fixture[8], 1);
    fixture[8] = ngram_profiler::trace::NATIVE_VERSION;
    assert_eq!(w.finish().unwrap(), fixture);
}

#[test]
fn native_truncated_file_names_path_and_offset() {
    let bytes = std::fs::read(data("native/two-threads.ngt")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cut = dir.path().join("cut.ngt");
    std::fs::write(&cut, &bytes[..bytes.len() - 2]).unwrap();
    let err = read_native(&cut).unwrap_err();
    assert!(
        matches!(err, TraceError::Binary { offset: 80, .. }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "{}: at byte 80: truncated: no end record after 5 events (the writer did not finish)",
            cut.display()
        )
    );
    // Allowed explicitly, the whole records before the cut are readable.
    let mut r = NativeReader::open(&cut).unwrap().allow_partial(true);
    assert_eq!(r.by_ref().collect::<Result<Vec<_>, _>>().unwrap().len(), 5);
    assert_eq!(r.truncated_at(), Some(80));
}

#[test]
fn native_writer_to_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rec.ngt");
    let file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    let mut w = NativeWriter::new(file, Arch::X86_64, 5);
    for i in 0..200_000u32 {
        let e = Event {
            tid: 1 + i % 3,
            nr: u16::try_from(i % 450).unwrap(),
            ts_ns: Some(5 + u64::from(i) * 700),
        };
        w.write_event(&e).unwrap();
    }
    assert_eq!(w.count(), 200_000);
    w.finish().unwrap();
    let t = read_path(Format::Native, &path).unwrap();
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].events.len(), 200_000);
    assert_eq!(t[0].events[199_999].ts_ns, Some(5 + 199_999 * 700));
    // A few bytes per event.
    let len = std::fs::metadata(&path).unwrap().len();
    assert!(len < 200_000 * 5, "{len} bytes");
    // In a directory, a recording's attack time beside it (`NAME.json`) is not a trace; any
    // other file is read as one.
    std::fs::write(dir.path().join("rec.json"), r#"{"exploit": true}"#).unwrap();
    assert_eq!(read_path(Format::Native, dir.path()).unwrap().len(), 1);
    std::fs::write(dir.path().join("rec.txt"), "not a trace").unwrap();
    let err = read_path(Format::Native, dir.path()).unwrap_err();
    assert!(err.to_string().contains("rec.txt"), "{err}");
}

#[test]
fn read_path_walks_directories_sorted() {
    let traces = read_path(Format::Strace, &data("strace")).unwrap();
    let names: Vec<String> = traces
        .iter()
        .map(|t| {
            Path::new(&t.source)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(
        names,
        vec![
            "killed-cut-last-line.strace",
            "nginx-threads-tt.strace",
            "real-stderr-vfork.strace",
            "single-ttt.strace",
            "stderr-pid-prefix.strace"
        ]
    );
    assert_eq!(read_path(Format::Unm, &data("unm")).unwrap().len(), 1);
    assert_eq!(
        read_path(Format::Adfa, &data("adfa")).unwrap()[0]
            .events
            .len(),
        22
    );
    assert_eq!(read_path(Format::Native, &data("native")).unwrap().len(), 1);

    let empty = tempfile::tempdir().unwrap();
    let err = read_path(Format::Strace, empty.path()).unwrap_err();
    assert!(matches!(err, TraceError::Empty { .. }), "{err:?}");
}

#[test]
fn directories_follow_symlinks_and_name_broken_ones() {
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("a.txt"), "3 4 5\n").unwrap();
    std::fs::create_dir(d.join("sub")).unwrap();
    std::fs::write(d.join("sub/b.txt"), "6 7\n").unwrap();
    // A link to a file, a link back up (a loop), a hidden file: 3 traces, no hang.
    symlink(d.join("a.txt"), d.join("sub/link.txt")).unwrap();
    symlink(d, d.join("sub/up")).unwrap();
    std::fs::write(d.join(".hidden"), "1 2\n").unwrap();
    let traces = read_path(Format::Adfa, d).unwrap();
    let lens: Vec<usize> = traces.iter().map(|t| t.events.len()).collect();
    assert_eq!(lens, [3, 2, 3], "{traces:?}");

    symlink(d.join("gone.txt"), d.join("sub/broken.txt")).unwrap();
    let err = read_path(Format::Adfa, d).unwrap_err().to_string();
    assert!(err.contains("broken.txt"), "{err}");
    let err = read_path(Format::Adfa, Path::new(""))
        .unwrap_err()
        .to_string();
    assert!(err.contains("empty path"), "{err}");
}

#[test]
fn errors_name_file_and_line() {
    let cases = [
        (
            Format::Unm,
            "bad/unm-three-columns.int",
            ":2: expected `pid syscall`, found a third field \"4\"",
        ),
        (
            Format::Strace,
            "bad/unknown-syscall.strace",
            ":2: unknown system call \"frobnicate\" (not in the x86_64 table)",
        ),
        (
            Format::Strace,
            "bad/unterminated.strace",
            ":2: unterminated arguments of read (no closing parenthesis)",
        ),
        (
            Format::Strace,
            "bad/resumed-without-start.strace",
            ":1: read resumed in pid 12 without an unfinished read call",
        ),
        (
            Format::Native,
            "strace/single-ttt.strace",
            ": at byte 0: not a native trace (bad magic, expected \"NGRAMTRC\")",
        ),
        (
            Format::Adfa,
            "unm/sendmail-two-procs.int",
            ":1: \"551\" is not an i386 system-call number (0-511)",
        ),
    ];
    for (format, rel, want) in cases {
        let path = data(rel);
        let err = read_path(format, &path).unwrap_err().to_string();
        assert_eq!(err, format!("{}{want}", path.display()), "{rel}");
    }
}

#[test]
fn native_bytes_in_memory() {
    let bytes = std::fs::read(data("native/two-threads.ngt")).unwrap();
    let t = parse_native(Path::new("mem"), &bytes).unwrap();
    assert_eq!(t.events.len(), 5);
    assert_eq!(t.source, "mem");
}
