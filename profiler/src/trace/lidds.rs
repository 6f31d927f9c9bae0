//! LID-DS recordings and sysdig text output: one trace per file, one stream per thread, the
//! enter event (`>`) of each system call, names mapped to x86_64 numbers; and the time at which
//! a LID-DS recording's exploit starts, from its metadata.
//!
//! The three layouts (LID-DS' own reader, `dataloader/syscall_2019.py` and `syscall_2021.py`,
//! names the fields the same way):
//!
//! - **LID-DS 2021** (`NAME.sc`): `timestamp-ns user-id process-id process-name thread-id
//!   syscall direction args…`, e.g. `1631078867380457267 0 2902771 apache2 2902771 select <
//!   res=0`. The metadata is `NAME.json` beside it: `exploit` (bool) and
//!   `time.exploit[0].absolute` (Unix seconds).
//! - **LID-DS 2019** (`NAME.txt`): `event-number time-of-day cpu user-id process-name thread-id
//!   direction syscall args…`, e.g. `25 21:41:16.391668012 1 33 apache2 1204 > read fd=9`. The
//!   metadata is the scenario's `runs.csv` (`image_name, scenario_name, is_executing_exploit,
//!   warmup_time, recording_time, exploit_start_time`), the exploit start in seconds after the
//!   recording's first event.
//! - **sysdig / Falco text** (`sysdig -p` default and `-pc` container formats): `event-number
//!   time cpu process-name (thread-id) direction type args…`; with `-pc` a container name and
//!   id come before the process and the thread is `(tid:vtid)`. The thread is the first
//!   `(N)` or `(N:M)` token followed by a direction, so process names with spaces are read.
//!
//! Which LID-DS layout a file has is decided by its first event line: a time of day
//! (`HH:MM:SS.n`) in the second field is 2019, a number in the first field 2021.
//!
//! Exit events (`<`) are not counted (a call is counted once, where it starts, as in the other
//! readers). sysdig's events that are not system calls (`switch`, `procexit`, `signaldeliver`,
//! `container`, …) are skipped; sysdig's `pread`/`pwrite` are `pread64`/`pwrite64`. Any other
//! name not in the x86_64 table is an error naming the file and line.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use super::{read_lines, Event, Trace, TraceError};
use crate::syscalls::Arch;

const NS: u64 = 1_000_000_000;
const DAY_NS: u64 = 86_400 * NS;

/// sysdig event types that are not system calls (scheduler, signals, meta events).
const NOT_SYSCALLS: &[&str] = &[
    "switch",
    "procexit",
    "signaldeliver",
    "container",
    "notification",
    "infra",
    "procinfo",
    "drop",
    "sysdigevent",
    "cpu_hotplug",
    "k8s",
    "mesos",
    "pluginevent",
    "asyncevent",
    "page_fault",
    "tracer",
    "scapevent",
];

/// sysdig's names for calls the kernel table names otherwise.
const ALIASES: &[(&str, &str)] = &[("pread", "pread64"), ("pwrite", "pwrite64")];

/// Field positions of one text layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// LID-DS 2021 `.sc`: `ts uid pid name tid syscall dir args…`.
    Lidds2021,
    /// LID-DS 2019 `.txt`: `num time cpu uid name tid dir syscall args…`.
    Lidds2019,
    /// sysdig/Falco text: `num time cpu name (tid) dir type args…` (and `-pc`).
    Sysdig,
}

/// Read one LID-DS recording (2019 or 2021 layout, told apart by its first line).
pub fn read_lidds(path: &Path) -> Result<Trace, TraceError> {
    let file = File::open(path).map_err(|e| TraceError::io(path, e))?;
    parse_lidds(path, BufReader::new(file), None)
}

/// Read one sysdig/Falco text capture.
pub fn read_sysdig(path: &Path) -> Result<Trace, TraceError> {
    let file = File::open(path).map_err(|e| TraceError::io(path, e))?;
    parse_lidds(path, BufReader::new(file), Some(Layout::Sysdig))
}

/// Parse sysdig text from `input`, naming it `path` in errors: in `layout`, or for `None` the
/// LID-DS layout its first line shows.
pub fn parse_lidds(
    path: &Path,
    input: impl BufRead,
    layout: Option<Layout>,
) -> Result<Trace, TraceError> {
    let mut layout = layout;
    let mut events = Vec::new();
    let mut clock = Clock::default();
    read_lines(path, input, |lineno, line, _last| {
        let fields: Vec<&str> = line.split(' ').filter(|f| !f.is_empty()).collect();
        if fields.is_empty() {
            return Ok(());
        }
        let err = |msg: String| TraceError::parse(path, lineno, msg);
        let lay = *layout.get_or_insert_with(|| detect(&fields));
        let Some(f) = split(lay, &fields) else {
            return Err(err(format!(
                "expected a {} line, found {:?}",
                describe(lay),
                excerpt(line)
            )));
        };
        if f.dir != ">" && f.dir != "<" {
            return Err(err(format!("direction {:?} is neither > nor <", f.dir)));
        }
        let tid: u32 = f
            .tid
            .parse()
            .map_err(|_| err(format!("{:?} is not a thread id", f.tid)))?;
        let ts = clock
            .parse(f.time)
            .ok_or_else(|| err(format!("{:?} is not a timestamp", f.time)))?;
        if f.dir == "<" || NOT_SYSCALLS.contains(&f.name) {
            return Ok(());
        }
        let name = ALIASES
            .iter()
            .find(|(a, _)| *a == f.name)
            .map_or(f.name, |(_, n)| n);
        let nr = Arch::X86_64.number(name).ok_or_else(|| {
            err(format!(
                "unknown system call {:?} (not in the x86_64 table)",
                f.name
            ))
        })?;
        events.push(Event {
            tid,
            nr,
            ts_ns: Some(ts),
        });
        Ok(())
    })?;
    Ok(Trace {
        source: path.display().to_string(),
        arch: Arch::X86_64,
        events,
    })
}

/// The fields a layout names.
struct Fields<'a> {
    time: &'a str,
    tid: &'a str,
    name: &'a str,
    dir: &'a str,
}

fn detect(fields: &[&str]) -> Layout {
    if fields.get(1).is_some_and(|f| f.contains(':')) {
        Layout::Lidds2019
    } else {
        Layout::Lidds2021
    }
}

fn describe(layout: Layout) -> &'static str {
    match layout {
        Layout::Lidds2021 => "LID-DS 2021 (`ts uid pid process tid syscall dir args`)",
        Layout::Lidds2019 => "LID-DS 2019 (`num time cpu uid process tid dir syscall args`)",
        Layout::Sysdig => "sysdig (`num time cpu process (tid) dir type args`)",
    }
}

fn split<'a>(layout: Layout, f: &[&'a str]) -> Option<Fields<'a>> {
    match layout {
        Layout::Lidds2021 => Some(Fields {
            time: f.first()?,
            tid: f.get(4)?,
            name: f.get(5)?,
            dir: f.get(6)?,
        }),
        Layout::Lidds2019 => Some(Fields {
            time: f.get(1)?,
            tid: f.get(5)?,
            dir: f.get(6)?,
            name: f.get(7)?,
        }),
        Layout::Sysdig => {
            // The thread: the first `(N)` / `(N:M)` token right before a direction.
            let i = (3..f.len().saturating_sub(2)).find(|&i| {
                let t = f[i];
                t.len() > 2
                    && t.starts_with('(')
                    && t.ends_with(')')
                    && (f[i + 1] == ">" || f[i + 1] == "<")
            })?;
            let inner = &f[i][1..f[i].len() - 1];
            Some(Fields {
                time: f.get(1)?,
                tid: inner.split(':').next()?,
                dir: f[i + 1],
                name: f[i + 2],
            })
        }
    }
}

fn excerpt(s: &str) -> String {
    let mut out: String = s.chars().take(60).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

/// Timestamps: nanoseconds since the epoch (`1631078867380457267`), seconds with a fraction
/// (`1631078867.380457267`, sysdig `-t a`), or a time of day (`21:41:16.391668012`, counted
/// from the first midnight, a day added each time the clock goes back by more than 12 hours).
#[derive(Default)]
struct Clock {
    day: u64,
    last_tod: Option<u64>,
}

impl Clock {
    fn parse(&mut self, s: &str) -> Option<u64> {
        if s.contains(':') {
            let tod = time_of_day(s)?;
            if let Some(last) = self.last_tod {
                if tod + DAY_NS / 2 < last {
                    self.day += 1;
                }
            }
            self.last_tod = Some(tod);
            return Some(self.day * DAY_NS + tod);
        }
        if let Some((sec, frac)) = s.split_once('.') {
            return Some(digits(sec)?.checked_mul(NS)? + fraction_ns(frac)?);
        }
        digits(s)
    }
}

fn digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `.380457` → 380457000 ns (at most 9 digits are used).
fn fraction_ns(frac: &str) -> Option<u64> {
    if frac.is_empty() || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let used = &frac[..frac.len().min(9)];
    let v: u64 = used.parse().ok()?;
    let len = u32::try_from(used.len()).ok()?;
    Some(v * 10u64.pow(9 - len))
}

fn time_of_day(s: &str) -> Option<u64> {
    let (hms, frac) = s.split_once('.').unwrap_or((s, "0"));
    let mut parts = hms.split(':');
    let h = digits(parts.next()?)?;
    let m = digits(parts.next()?)?;
    let sec = digits(parts.next()?)?;
    if parts.next().is_some() || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    Some(((h * 60 + m) * 60 + sec) * NS + fraction_ns(frac)?)
}

/// When a LID-DS recording's exploit starts, in the trace's own clock (nanoseconds, as the
/// events' `ts_ns`): `None` for a recording without an exploit.
///
/// 2021: `NAME.json` beside `NAME.sc`, `time.exploit[0].absolute` seconds since the epoch.
/// 2019: the line of `runs.csv` (in the recording's directory) whose `scenario_name` is the
/// file's stem; `exploit_start_time` seconds after the first event of `trace`.
pub fn lidds_exploit_start(path: &Path, trace: &Trace) -> Result<Option<u64>, TraceError> {
    let json = path.with_extension("json");
    if json.is_file() {
        return exploit_from_json(&json);
    }
    let runs = path
        .parent()
        .map_or_else(|| PathBuf::from("runs.csv"), |d| d.join("runs.csv"));
    if runs.is_file() {
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let rel = exploit_from_runs(&runs, &stem)?;
        let first = trace.events.iter().find_map(|e| e.ts_ns);
        return Ok(rel.and_then(|r| first.map(|f| f + r)));
    }
    Err(TraceError::io(
        &json,
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "no metadata: neither NAME.json (LID-DS 2021) nor runs.csv (LID-DS 2019)",
        ),
    ))
}

fn exploit_from_json(json: &Path) -> Result<Option<u64>, TraceError> {
    let text = std::fs::read_to_string(json).map_err(|e| TraceError::io(json, e))?;
    // LID-DS' own reader turns single quotes into double ones before parsing; do the same
    // when the file is not JSON as it stands.
    let v: serde_json::Value = serde_json::from_str(&text)
        .or_else(|_| serde_json::from_str(&text.replace('\'', "\"")))
        .map_err(|e| TraceError::parse(json, e.line(), format!("not JSON: {e}")))?;
    let exploit = v.get("exploit").and_then(serde_json::Value::as_bool);
    if exploit != Some(true) {
        return Ok(None);
    }
    let abs = v
        .pointer("/time/exploit/0/absolute")
        .and_then(serde_json::Value::as_f64)
        .filter(|a| a.is_finite() && *a >= 0.0)
        .ok_or_else(|| {
            TraceError::parse(
                json,
                1,
                "exploit is true but time.exploit[0].absolute is not a time in seconds",
            )
        })?;
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let ns = (abs * NS as f64).round() as u64;
    Ok(Some(ns))
}

fn exploit_from_runs(runs: &Path, stem: &str) -> Result<Option<u64>, TraceError> {
    let file = File::open(runs).map_err(|e| TraceError::io(runs, e))?;
    let mut found = None;
    read_lines(runs, BufReader::new(file), |lineno, line, _| {
        if lineno == 1 || found.is_some() {
            return Ok(()); // header
        }
        let cols: Vec<&str> = line.split(',').map(str::trim).collect();
        if cols.get(1) != Some(&stem) {
            return Ok(());
        }
        let bad = |msg: &str| TraceError::parse(runs, lineno, msg.to_owned());
        let exploit = cols
            .get(2)
            .map(|s| s.eq_ignore_ascii_case("true"))
            .ok_or_else(|| bad("missing is_executing_exploit"))?;
        let start = if exploit {
            let s = cols
                .get(5)
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or_else(|| bad("exploit_start_time is not whole seconds"))?;
            Some(s * NS)
        } else {
            None
        };
        found = Some(start);
        Ok(())
    })?;
    found.ok_or_else(|| TraceError::parse(runs, 1, format!("no line for recording {stem:?}")))
}

/// Index of the first event at or after `start_ns` (the attack's first call), if any.
pub fn attack_start(trace: &Trace, start_ns: u64) -> Option<usize> {
    trace
        .events
        .iter()
        .position(|e| e.ts_ns.is_some_and(|t| t >= start_ns))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, layout: Option<Layout>) -> Result<Trace, TraceError> {
        parse_lidds(Path::new("t.sc"), text.as_bytes(), layout)
    }

    fn names(t: &Trace) -> Vec<(u32, String)> {
        t.events
            .iter()
            .map(|e| (e.tid, Arch::X86_64.display(e.nr)))
            .collect()
    }

    #[test]
    fn lidds_2021_enter_events_per_thread() {
        let text = "\
1631078867380457267 0 2902771 apache2 2902771 select > nfds=0
1631078867380457300 0 2902771 apache2 2902771 select < res=0
1631078867380457400 33 2902771 apache2 2902772 read > fd=9(<4t>1.2.3.4:80) size=8000
1631078867380457500 33 2902771 apache2 2902772 read < res=12 data=R0VU
1631078867380457600 0 2902771 apache2 2902771 switch > next=0
1631078867380457700 0 2902771 apache2 2902771 pread > fd=3
";
        let t = parse(text, None).expect("parses");
        assert_eq!(t.arch, Arch::X86_64);
        assert_eq!(
            names(&t),
            [
                (2902771, "select".to_owned()),
                (2902772, "read".to_owned()),
                (2902771, "pread64".to_owned())
            ]
        );
        assert_eq!(t.events[0].ts_ns, Some(1_631_078_867_380_457_267));
    }

    #[test]
    fn lidds_2019_layout_is_detected() {
        let text = "\
25 21:41:16.391668012 1 33 apache2 1204 > read fd=9
26 21:41:16.391668100 1 33 apache2 1204 < read res=3
27 21:41:16.5 0 0 mysqld 1300 > futex addr=7F op=129
";
        let t = parse(text, None).expect("parses");
        assert_eq!(
            names(&t),
            [(1204, "read".to_owned()), (1300, "futex".to_owned())]
        );
        assert_eq!(
            t.events[1].ts_ns,
            Some(((21 * 60 + 41) * 60 + 16) * NS + 500_000_000)
        );
    }

    #[test]
    fn sysdig_default_and_container_formats() {
        let text = "\
151 22:31:53.106214612 0 Web Content (1234) > openat dirfd=-100 name=/etc/hosts
152 22:31:53.106214700 0 Web Content (1234) < openat fd=3
153 22:31:53.106214800 1 web (0123456789ab) nginx (4321:7) > accept4 flags=0
154 23:59:59.9 1 web (0123456789ab) nginx (4321:7) > switch next=2
155 00:00:00.1 1 web (0123456789ab) nginx (4321:7) > close fd=3
";
        let t = parse_lidds(Path::new("cap.txt"), text.as_bytes(), Some(Layout::Sysdig))
            .expect("parses");
        assert_eq!(
            names(&t),
            [
                (1234, "openat".to_owned()),
                (4321, "accept4".to_owned()),
                (4321, "close".to_owned())
            ]
        );
        // The clock passed midnight: the last event is on the next day.
        assert_eq!(t.events[2].ts_ns, Some(DAY_NS + 100_000_000));
    }

    #[test]
    fn errors_name_the_file_and_line() {
        let e = parse("1 0 2 apache2 2 frobnicate > x=1\n", None).expect_err("unknown");
        assert_eq!(
            e.to_string(),
            "t.sc:1: unknown system call \"frobnicate\" (not in the x86_64 table)"
        );
        let e = parse("1 0 2 apache2 2 read > x\n1 0 2 a x read >\n", None).expect_err("tid");
        assert_eq!(e.to_string(), "t.sc:2: \"x\" is not a thread id");
        let e = parse("1 0 2 apache2\n", None).expect_err("short");
        assert!(
            e.to_string().starts_with("t.sc:1: expected a LID-DS 2021"),
            "{e}"
        );
        let e = parse("1 0 2 apache2 2 read ? x\n", None).expect_err("dir");
        assert_eq!(e.to_string(), "t.sc:1: direction \"?\" is neither > nor <");
        let e = parse("x 0 2 apache2 2 read > x\n", None).expect_err("ts");
        assert_eq!(e.to_string(), "t.sc:1: \"x\" is not a timestamp");
        let e = parse_lidds(
            Path::new("c"),
            "1 22:31:53.1 0 a 1234 > read\n".as_bytes(),
            Some(Layout::Sysdig),
        )
        .expect_err("no (tid)");
        assert!(e.to_string().starts_with("c:1: expected a sysdig"), "{e}");
    }

    #[test]
    fn exploit_start_from_2021_json_and_2019_runs_csv() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sc = dir.path().join("rec_1.sc");
        std::fs::write(
            &sc,
            "1631078867000000000 0 1 a 1 read > fd=1\n\
             1631078870000000000 0 1 a 1 execve > filename=/bin/sh\n",
        )
        .expect("write");
        std::fs::write(
            dir.path().join("rec_1.json"),
            "{'exploit': true, 'time': {'exploit': [{'absolute': 1631078869.5, 'name': 'x'}]}}",
        )
        .expect("write");
        let t = read_lidds(&sc).expect("reads");
        let start = lidds_exploit_start(&sc, &t).expect("metadata");
        assert_eq!(start, Some(1_631_078_869_500_000_000));
        assert_eq!(attack_start(&t, 1_631_078_869_500_000_000), Some(1));

        std::fs::write(dir.path().join("rec_1.json"), r#"{"exploit": false}"#).expect("write");
        assert_eq!(lidds_exploit_start(&sc, &t).expect("metadata"), None);

        let d19 = tempfile::tempdir().expect("tempdir");
        let txt = d19.path().join("happy_lumiere.txt");
        std::fs::write(
            &txt,
            "1 10:00:00.0 0 0 a 7 > read fd=1\n2 10:00:05.0 0 0 a 7 > execve\n",
        )
        .expect("write");
        std::fs::write(
            d19.path().join("runs.csv"),
            "image_name, scenario_name, is_executing_exploit, warmup_time, recording_time, exploit_start_time\n\
             cve, other, False, 3, 30, -1\n\
             cve, happy_lumiere, True, 3, 30, 4\n",
        )
        .expect("write");
        let t = read_lidds(&txt).expect("reads");
        let start = lidds_exploit_start(&txt, &t).expect("metadata");
        assert_eq!(start, Some(10 * 3600 * NS + 4 * NS));
        assert_eq!(attack_start(&t, start.expect("exploit")), Some(1));
        let e = lidds_exploit_start(&d19.path().join("missing.txt"), &t).expect_err("no line");
        assert!(
            e.to_string().contains("no line for recording \"missing\""),
            "{e}"
        );
    }
}
