//! Property tests of the trace readers: the native format round-trips any events, and no
//! reader panics on any input.

// Helpers outside `#[test]` functions panic on failure like the tests do.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use ngram_profiler::syscalls::Arch;
use ngram_profiler::trace::{
    parse_adfa, parse_native, parse_strace, parse_unm, Event, NativeReader, NativeWriter,
};
use proptest::prelude::*;

fn arch() -> impl Strategy<Value = Arch> {
    prop_oneof![Just(Arch::X86_64), Just(Arch::I386), Just(Arch::Opaque)]
}

fn event() -> impl Strategy<Value = Event> {
    (
        prop_oneof![0u32..4, any::<u32>()],
        any::<u16>(),
        proptest::option::of(any::<u64>()),
    )
        .prop_map(|(tid, nr, ts_ns)| Event { tid, nr, ts_ns })
}

fn encode(arch: Arch, start: u64, meta: &str, events: &[Event]) -> Vec<u8> {
    let mut w = NativeWriter::with_meta(Vec::new(), arch, start, meta).unwrap();
    for e in events {
        w.write_event(e).unwrap();
    }
    w.finish().unwrap()
}

proptest! {
    #[test]
    fn native_round_trip(
        arch in arch(),
        start in any::<u64>(),
        meta in ".{0,40}",
        events in proptest::collection::vec(event(), 0..300),
    ) {
        let bytes = encode(arch, start, &meta, &events);
        let r = NativeReader::new(&bytes[..], Path::new("p")).unwrap();
        prop_assert_eq!(r.header().arch, arch);
        prop_assert_eq!(r.header().start_ns, start);
        prop_assert_eq!(&r.header().meta, &meta);
        let got = r.collect::<Result<Vec<_>, _>>().unwrap();
        prop_assert_eq!(got, events);
    }

    #[test]
    fn native_any_cut_is_an_error_or_a_prefix(
        events in proptest::collection::vec(event(), 1..50),
        cut in any::<proptest::sample::Index>(),
    ) {
        let bytes = encode(Arch::X86_64, 0, "", &events);
        let at = cut.index(bytes.len());
        let strict = parse_native(Path::new("c"), &bytes[..at]);
        prop_assert!(strict.is_err());
        if let Ok(r) = NativeReader::new(&bytes[..at], Path::new("c")) {
            let got = r.allow_partial(true).collect::<Result<Vec<_>, _>>().unwrap();
            prop_assert!(got.len() <= events.len());
            prop_assert_eq!(&got[..], &events[..got.len()]);
        }
    }

    #[test]
    fn native_never_panics(data in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = parse_native(Path::new("f"), &data);
        let mut with_magic = b"NGRAMTRC\x01\x01\x00".to_vec();
        with_magic.extend_from_slice(&data);
        let _ = parse_native(Path::new("f"), &with_magic);
        if let Ok(r) = NativeReader::new(&with_magic[..], Path::new("f")) {
            let _ = r.allow_partial(true).count();
        }
    }

    #[test]
    fn text_readers_never_panic(data in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = parse_strace(Path::new("f"), &data[..]);
        let _ = parse_unm(Path::new("f"), &data[..]);
        let _ = parse_adfa(Path::new("f"), &data[..]);
    }

    #[test]
    fn strace_never_panics_on_strace_like_text(
        lines in proptest::collection::vec(
            "(\\[pid +[0-9]{1,6}\\] |[0-9]{1,6} +)?([0-9:.]{1,18} )?(\\+\\+\\+|---|<\\.\\.\\. |strace: )?[a-z_0-9]{0,12}[(\"\\\\)\\[\\]{}<>=?., a-z0-9]{0,40}( <unfinished \\.\\.\\.>| resumed>)?",
            0..20,
        ),
    ) {
        let text = lines.join("\n");
        let _ = parse_strace(Path::new("f"), text.as_bytes());
    }

    #[test]
    fn unm_reads_what_it_is_given(pairs in proptest::collection::vec((any::<u32>(), any::<u16>()), 0..100)) {
        let text: String = pairs.iter().map(|(p, n)| format!("{p} {n}\n")).collect();
        let t = parse_unm(Path::new("u"), text.as_bytes()).unwrap();
        let got: Vec<(u32, u16)> = t.events.iter().map(|e| (e.tid, e.nr)).collect();
        prop_assert_eq!(got, pairs);
    }

    #[test]
    fn strace_reads_back_what_was_rendered(
        calls in proptest::collection::vec(
            (1u32..5, any::<proptest::sample::Index>(), "[ -~]{0,30}", any::<bool>(), 0u64..86_400_000_000),
            0..60,
        ),
    ) {
        // Render `strace -f -tt` lines (arguments with quotes, parentheses, `=` and escapes;
        // some calls split into unfinished/resumed pairs interleaved with other pids), then
        // parse them back.
        let table = Arch::X86_64.syscalls();
        let mut text = String::new();
        let mut pending: std::collections::HashMap<u32, &str> = std::collections::HashMap::new();
        let mut want = Vec::new();
        let mut t_us = 0u64;
        for (pid, idx, arg, split, dt) in &calls {
            t_us = (t_us + dt % 1_000_000).min(86_399_999_999);
            let ts = format!(
                "{:02}:{:02}:{:02}.{:06}",
                t_us / 3_600_000_000,
                t_us / 60_000_000 % 60,
                t_us / 1_000_000 % 60,
                t_us % 1_000_000
            );
            if let Some(name) = pending.remove(pid) {
                text.push_str(&format!("{pid}  {ts} <... {name} resumed>, 3) = 0\n"));
            }
            let (nr, name) = table[idx.index(table.len())];
            let quoted = format!("{arg:?}");
            if *split {
                text.push_str(&format!("{pid}  {ts} {name}({quoted} <unfinished ...>\n"));
                pending.insert(*pid, name);
            } else {
                text.push_str(&format!("{pid}  {ts} {name}({quoted}, (3)) = 0 <0.000010>\n"));
            }
            want.push((*pid, nr, Some(t_us * 1000)));
        }
        let t = parse_strace(Path::new("r"), text.as_bytes()).unwrap();
        let got: Vec<(u32, u16, Option<u64>)> =
            t.events.iter().map(|e| (e.tid, e.nr, e.ts_ns)).collect();
        prop_assert_eq!(got, want);
    }
}
