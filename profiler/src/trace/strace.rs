//! `strace -f` output: one trace per file, one stream per pid (tid), names mapped to x86_64
//! numbers. What each kind of line does is in `docs/trace-formats.md`.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use super::{read_lines, Event, Trace, TraceError};
use crate::syscalls::Arch;

const NS: u64 = 1_000_000_000;
const DAY_NS: u64 = 86_400 * NS;

/// Read one `strace` output file (`strace -f -o FILE`, with or without `-t`/`-tt`/`-ttt`).
pub fn read_strace(path: &Path) -> Result<Trace, TraceError> {
    let file = File::open(path).map_err(|e| TraceError::io(path, e))?;
    parse_strace(path, BufReader::new(file))
}

/// Parse `strace` output from `input`, naming it `path` in errors.
///
/// Each system call is counted once, at the line where it starts (an `<unfinished ...>` line
/// counts, its `<... NAME resumed>` line does not), in the stream of its pid. Lines without a pid
/// belong to the traced command's first process: tid 0 until a `[pid N]` line shows which pid
/// that is, then N (earlier events are renumbered); in a file without any pid prefix named
/// `NAME.PID` (`strace -ff -o NAME`), PID. Signals (`--- SIG... ---`), exits (`+++ ...
/// +++`) and strace's own messages (`strace: ...`) are not system calls. A last line cut off
/// before its newline (the tracer was killed while writing) counts if it got as far as
/// `name(`; every other malformed line is an error.
pub fn parse_strace(path: &Path, input: impl BufRead) -> Result<Trace, TraceError> {
    let mut p = Parser {
        path,
        events: Vec::new(),
        pending: HashMap::new(),
        clock: Clock::default(),
        saw_unprefixed: false,
        children: HashSet::new(),
        leader: None,
        continuation: false,
        saw_prefixed: false,
    };
    read_lines(path, input, |lineno, line, last| p.line(lineno, line, last))?;
    if !p.saw_prefixed && p.leader.is_none() {
        // `strace -ff -o NAME` writes one process per file, `NAME.PID`, without pid prefixes.
        p.leader = path
            .extension()
            .and_then(|e| e.to_str())
            .filter(|e| is_digits(e))
            .and_then(|e| e.parse().ok());
    }
    if let Some(leader) = p.leader {
        for ev in &mut p.events {
            if ev.tid == 0 {
                ev.tid = leader;
            }
        }
    }
    Ok(Trace {
        source: path.display().to_string(),
        arch: Arch::X86_64,
        events: p.events,
    })
}

/// Turns `-t`/`-tt` times of day into nanoseconds since the first midnight (adding a day each
/// time the clock goes back by more than 12 hours); `-ttt`/`-r` seconds pass unchanged.
#[derive(Default)]
struct Clock {
    day: u64,
    last_tod: Option<u64>,
}

struct Parser<'a> {
    path: &'a Path,
    events: Vec<Event>,
    /// Unfinished call per tid: its name and line.
    pending: HashMap<u32, (String, usize)>,
    clock: Clock,
    /// Some line had no pid prefix (its events have tid 0 until the leader is known).
    saw_unprefixed: bool,
    /// Pids returned by fork/clone in unprefixed lines: not the leader.
    children: HashSet<u32>,
    /// The pid of the unprefixed lines' process, once a `[pid N]` line shows it.
    leader: Option<u32>,
    /// The previous line was a call cut by one of strace's own messages (`vfork(strace: Process
    /// 12 attached`, seen when strace writes to stderr); its ` <unfinished ...>` comes next.
    continuation: bool,
    /// Some line had a pid prefix.
    saw_prefixed: bool,
}

/// A cursor over one line.
struct Cur<'s> {
    s: &'s str,
}

impl<'s> Cur<'s> {
    fn skip_ws(&mut self) {
        self.s = self.s.trim_start();
    }

    /// The next whitespace-delimited token, without consuming it.
    fn peek_token(&self) -> &'s str {
        let end = self.s.find(char::is_whitespace).unwrap_or(self.s.len());
        &self.s[..end]
    }

    fn advance(&mut self, n: usize) {
        self.s = self.s.get(n..).unwrap_or("");
    }
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn excerpt(s: &str) -> String {
    let mut out: String = s.chars().take(60).collect();
    if out.len() < s.len() {
        out.push_str("...");
    }
    format!("{out:?}")
}

/// Nanoseconds of a fraction of a second given by its decimal digits (1 to 9 of them).
fn frac_ns(digits: &str) -> Option<u64> {
    if digits.is_empty() || digits.len() > 9 || !is_digits(digits) {
        return None;
    }
    let v: u64 = digits.parse().ok()?;
    let scale = 10u64.checked_pow(u32::try_from(9 - digits.len()).ok()?)?;
    v.checked_mul(scale)
}

enum Stamp {
    /// Time of day (`-t`, `-tt`), ns since midnight.
    TimeOfDay(u64),
    /// Seconds (`-ttt` since the epoch, `-r` relative), in ns.
    Seconds(u64),
}

/// Parse a timestamp token, or `None` when `tok` is not one.
fn parse_stamp(tok: &str) -> Option<Result<Stamp, String>> {
    let bad = || Some(Err(format!("bad timestamp {tok:?}")));
    if tok.contains(':') {
        let (hms, frac) = match tok.split_once('.') {
            Some((a, b)) => (a, Some(b)),
            None => (tok, None),
        };
        let parts: Vec<&str> = hms.split(':').collect();
        if parts.len() != 3 || !parts.iter().all(|p| is_digits(p) && p.len() <= 2) {
            return if parts.first().is_some_and(|p| is_digits(p)) {
                bad()
            } else {
                None
            };
        }
        let num = |s: &str| s.parse::<u64>().unwrap_or(u64::MAX);
        let (h, m, s) = (num(parts[0]), num(parts[1]), num(parts[2]));
        if h > 23 || m > 59 || s > 60 {
            return bad();
        }
        let frac = match frac {
            Some(f) => match frac_ns(f) {
                Some(ns) => ns,
                None => return bad(),
            },
            None => 0,
        };
        return Some(Ok(Stamp::TimeOfDay(((h * 60 + m) * 60 + s) * NS + frac)));
    }
    let (secs, frac) = tok.split_once('.')?;
    if !is_digits(secs) {
        return None;
    }
    let ns = secs
        .parse::<u64>()
        .ok()
        .and_then(|s| s.checked_mul(NS))
        .zip(frac_ns(frac))
        .and_then(|(a, b)| a.checked_add(b));
    Some(
        ns.map(Stamp::Seconds)
            .ok_or_else(|| format!("bad timestamp {tok:?}")),
    )
}

impl Clock {
    fn ns(&mut self, stamp: Stamp) -> u64 {
        match stamp {
            Stamp::Seconds(ns) => ns,
            Stamp::TimeOfDay(tod) => {
                if let Some(last) = self.last_tod {
                    if tod.saturating_add(DAY_NS / 2) < last {
                        self.day = self.day.saturating_add(1);
                    }
                }
                self.last_tod = Some(tod);
                self.day.saturating_mul(DAY_NS).saturating_add(tod)
            }
        }
    }
}

/// Where the argument list that starts right after `(` ends: the index just past its `)`, or
/// `None` when the line ends first. Quoted strings (with `\` escapes) may hold any character.
fn close_paren(args: &str) -> Option<usize> {
    let mut depth = 1usize;
    let mut in_str = false;
    let mut esc = false;
    for (i, b) in args.bytes().enumerate() {
        if in_str {
            if esc {
                esc = false;
            } else if b == b'\\' {
                esc = true;
            } else if b == b'"' {
                in_str = false;
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            _ => {}
        }
    }
    None
}

/// The number of a system call named by strace: a name of the x86_64 table, or a raw
/// `syscall_0x1ab` / `syscall_427`.
fn syscall_number(name: &str) -> Result<u16, String> {
    if let Some(raw) = name.strip_prefix("syscall_") {
        let n = match raw.strip_prefix("0x") {
            Some(hex) => u16::from_str_radix(hex, 16).ok(),
            None => raw.parse().ok(),
        };
        return n.ok_or_else(|| format!("bad raw system call {name:?}"));
    }
    Arch::X86_64
        .number(name)
        .ok_or_else(|| format!("unknown system call {name:?} (not in the x86_64 table)"))
}

const UNFINISHED: &str = "<unfinished ...>";

impl Parser<'_> {
    fn err(&self, lineno: usize, msg: impl Into<String>) -> TraceError {
        TraceError::parse(self.path, lineno, msg)
    }

    fn line(&mut self, lineno: usize, line: &str, last: bool) -> Result<(), TraceError> {
        let mut cur = Cur { s: line };
        cur.skip_ws();
        if std::mem::take(&mut self.continuation) && cur.s.trim_end() == UNFINISHED {
            return Ok(()); // the rest of a call cut by a tracer message
        }
        if cur.s.is_empty() {
            return Ok(());
        }
        if cur.s.starts_with("strace: ") {
            return Ok(()); // the tracer's own messages (attached, detached, ...)
        }

        // Pid: `[pid  1234] ` or `1234 `.
        let mut tid = None;
        if let Some(rest) = cur.s.strip_prefix("[pid") {
            let rest = rest.trim_start();
            let end = rest.find(']').ok_or_else(|| {
                self.err(
                    lineno,
                    format!("unterminated `[pid` prefix in {}", excerpt(line)),
                )
            })?;
            let pid = rest[..end].trim();
            tid = Some(
                pid.parse::<u32>()
                    .map_err(|_| self.err(lineno, format!("{pid:?} is not a process id")))?,
            );
            cur.s = &rest[end + 1..];
        } else {
            let tok = cur.peek_token();
            if is_digits(tok) && tok.len() < cur.s.len() {
                tid = Some(
                    tok.parse::<u32>()
                        .map_err(|_| self.err(lineno, format!("{tok:?} is not a process id")))?,
                );
                cur.advance(tok.len());
            }
        }
        cur.skip_ws();

        // Timestamp.
        let mut ts_ns = None;
        let tok = cur.peek_token();
        if tok.len() < cur.s.len() {
            if let Some(stamp) = parse_stamp(tok) {
                let stamp = stamp.map_err(|m| self.err(lineno, m))?;
                ts_ns = Some(self.clock.ns(stamp));
                cur.advance(tok.len());
                cur.skip_ws();
            }
        }
        // `-i` instruction pointer: `[00007f...] ` (`[????????????????]` when there is none).
        if let Some(rest) = cur.s.strip_prefix('[') {
            if let Some((ip, after)) = rest.split_once(']') {
                if !ip.is_empty() && ip.bytes().all(|b| b.is_ascii_hexdigit() || b == b'?') {
                    cur.s = after.trim_start();
                }
            }
        }

        let body = cur.s.trim_end();
        let resumed_name = body
            .strip_prefix("<...")
            .and_then(|r| r.trim_start().split_once(" resumed>"))
            .map(|(n, _)| n.trim());
        let tid = self.stream(tid, resumed_name);

        if body.starts_with("---") {
            if (body.len() >= 6 && body.ends_with("---")) || last {
                return Ok(()); // a signal or other event of the process, not a call
            }
            return Err(self.err(lineno, format!("malformed signal line {}", excerpt(body))));
        }
        if body.starts_with("+++") {
            if (body.len() >= 6 && body.ends_with("+++")) || last {
                // exited / killed / superseded: the thread is gone, its unfinished call (counted
                // at its start) never resumes.
                self.pending.remove(&tid);
                return Ok(());
            }
            return Err(self.err(lineno, format!("malformed exit line {}", excerpt(body))));
        }
        if let Some(rest) = body.strip_prefix("<...") {
            return self.resumed(lineno, tid, rest, last);
        }

        // A call: `name(args) = ret` or `name(args <unfinished ...>`.
        let name_len = body
            .bytes()
            .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
            .count();
        let name = &body[..name_len];
        let Some(args) = body[name_len..].strip_prefix('(') else {
            if last {
                return Err(self.err(
                    lineno,
                    format!(
                        "truncated last line {} (cut off before a call)",
                        excerpt(body)
                    ),
                ));
            }
            return Err(self.err(lineno, format!("not a system call line: {}", excerpt(body))));
        };
        if name.is_empty() {
            return Err(self.err(lineno, format!("not a system call line: {}", excerpt(body))));
        }
        let nr = syscall_number(name).map_err(|m| self.err(lineno, m))?;
        if body.ends_with(UNFINISHED) {
            self.pending.insert(tid, (name.to_owned(), lineno));
        } else {
            let end = close_paren(args);
            if end.is_none() && args.contains("strace: ") {
                // strace cut its own line with a message (stderr output); the call started.
                self.pending.insert(tid, (name.to_owned(), lineno));
                self.continuation = true;
            } else if !last {
                self.finished_call(lineno, tid, name, args, end)?;
            }
        }
        self.events.push(Event { tid, nr, ts_ns });
        Ok(())
    }

    /// Check the end of a whole call line (`... ) = ret`) and note the children that fork-like
    /// calls of the unprefixed process return.
    fn finished_call(
        &mut self,
        lineno: usize,
        tid: u32,
        name: &str,
        args: &str,
        end: Option<usize>,
    ) -> Result<(), TraceError> {
        let end = end.ok_or_else(|| {
            self.err(
                lineno,
                format!("unterminated arguments of {name} (no closing parenthesis)"),
            )
        })?;
        let ret = args[end..].trim_start();
        let Some(value) = ret.strip_prefix('=') else {
            return Err(self.err(lineno, format!("missing return value of {name}")));
        };
        if value.trim().is_empty() {
            return Err(self.err(lineno, format!("missing return value of {name}")));
        }
        if tid == 0 && matches!(name, "clone" | "clone3" | "fork" | "vfork") {
            if let Some(child) = value.split_whitespace().next().and_then(|v| v.parse().ok()) {
                self.children.insert(child);
            }
        }
        Ok(())
    }

    /// The stream of a line with pid `pid` (or none), fixing the unprefixed process's pid when
    /// that becomes known.
    ///
    /// The first `[pid N]` line after unprefixed ones is the leader's if it resumes the
    /// leader's unfinished call, or (when none is unfinished) if N is not a child the leader
    /// forked.
    fn stream(&mut self, pid: Option<u32>, resumed: Option<&str>) -> u32 {
        match pid {
            None => {
                if let Some(leader) = self.leader {
                    return leader;
                }
                self.saw_unprefixed = true;
                0
            }
            Some(pid) => {
                self.saw_prefixed = true;
                if self.saw_unprefixed && self.leader.is_none() {
                    let is_leader = match self.pending.get(&0) {
                        Some((name, _)) => {
                            resumed == Some(name.as_str()) && !self.pending.contains_key(&pid)
                        }
                        None => !self.children.contains(&pid),
                    };
                    if is_leader {
                        self.leader = Some(pid);
                        if let Some(p) = self.pending.remove(&0) {
                            self.pending.insert(pid, p);
                        }
                    }
                }
                pid
            }
        }
    }

    fn resumed(
        &mut self,
        lineno: usize,
        tid: u32,
        rest: &str,
        last: bool,
    ) -> Result<(), TraceError> {
        let rest = rest.trim_start();
        let Some((name, after)) = rest.split_once(" resumed>") else {
            if last {
                return Ok(()); // cut off; the call was counted at its start
            }
            return Err(self.err(lineno, format!("malformed resumed line {}", excerpt(rest))));
        };
        let name = name.trim();
        match self.pending.remove(&tid) {
            Some((started, _)) if started == name => {}
            Some((started, at)) => {
                return Err(self.err(
                    lineno,
                    format!(
                    "{name} resumed in pid {tid} but its unfinished call is {started} (line {at})"
                ),
                ))
            }
            None => {
                return Err(self.err(
                    lineno,
                    format!("{name} resumed in pid {tid} without an unfinished {name} call"),
                ))
            }
        }
        if after.trim_end().ends_with(UNFINISHED) {
            self.pending.insert(tid, (name.to_owned(), lineno));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Trace, TraceError> {
        parse_strace(Path::new("t.strace"), text.as_bytes())
    }

    fn calls(t: &Trace) -> Vec<(u32, &'static str)> {
        t.events
            .iter()
            .map(|e| (e.tid, Arch::X86_64.name(e.nr).unwrap_or("?")))
            .collect()
    }

    #[test]
    fn plain_single_process() {
        let t = parse(
            "execve(\"/bin/true\", [\"true\"], 0x7ffd /* 20 vars */) = 0\n\
             brk(NULL)                               = 0x55d0c0a1e000\n\
             openat(AT_FDCWD, \"/etc/a (b) = \\\"c\\\"\", O_RDONLY) = -1 ENOENT (No such file or directory)\n\
             exit_group(0)                           = ?\n\
             +++ exited with 0 +++\n",
        )
        .unwrap();
        assert_eq!(
            calls(&t),
            vec![(0, "execve"), (0, "brk"), (0, "openat"), (0, "exit_group")]
        );
        assert!(t.events.iter().all(|e| e.ts_ns.is_none()));
    }

    #[test]
    fn timestamps() {
        let t = parse(
            "1700000000.123456 read(0, \"\", 1) = 0\n\
             1700000001.5 close(0) = 0\n",
        )
        .unwrap();
        assert_eq!(t.events[0].ts_ns, Some(1_700_000_000_123_456_000));
        assert_eq!(t.events[1].ts_ns, Some(1_700_000_001_500_000_000));
        let t = parse(
            "100 23:59:59.999999 read(0, \"\", 1) = 0\n\
             100 00:00:00.000001 close(0) = 0\n\
             100 00:00:01 close(1) = 0\n",
        )
        .unwrap();
        assert_eq!(t.events[0].ts_ns, Some(86_399_999_999_000));
        assert_eq!(t.events[1].ts_ns, Some(86_400_000_001_000));
        assert_eq!(t.events[2].ts_ns, Some(86_401_000_000_000));
        assert!(t.events.iter().all(|e| e.tid == 100));
    }

    #[test]
    fn unprefixed_lines_join_the_leader() {
        let t = parse(
            "execve(\"/bin/sh\", [\"sh\"], 0x1 /* 1 var */) = 0\n\
             clone(child_stack=NULL, flags=CLONE_CHILD_SETTID|SIGCHLD <unfinished ...>\n\
             [pid   501] execve(\"/bin/ls\", [\"ls\"], 0x2 /* 1 var */) = 0\n\
             [pid   500] <... clone resumed>, child_tidptr=0x7f) = 501\n\
             [pid   501] exit_group(0) = ?\n\
             [pid   501] +++ exited with 0 +++\n\
             wait4(-1, NULL, 0, NULL) = 501\n",
        )
        .unwrap();
        assert_eq!(
            calls(&t),
            vec![
                (500, "execve"),
                (500, "clone"),
                (501, "execve"),
                (501, "exit_group"),
                (500, "wait4")
            ]
        );
    }

    #[test]
    fn ff_files_take_the_pid_from_their_name() {
        let text = "read(0, \"\", 1) = 0\nexit_group(0) = ?\n+++ exited with 0 +++\n";
        let t = parse_strace(Path::new("run/trace.4242"), text.as_bytes()).unwrap();
        assert_eq!(calls(&t), vec![(4242, "read"), (4242, "exit_group")]);
        let t = parse_strace(Path::new("run/trace.strace"), text.as_bytes()).unwrap();
        assert_eq!(calls(&t), vec![(0, "read"), (0, "exit_group")]);
    }

    #[test]
    fn errors_name_the_line() {
        let e = |s: &str| parse(s).unwrap_err().to_string();
        assert_eq!(
            e("read(0, \"\", 1) = 0\nfrobnicate(1) = 0\n"),
            "t.strace:2: unknown system call \"frobnicate\" (not in the x86_64 table)"
        );
        assert_eq!(
            e("read(0, \"(\", 1 = 0\nclose(0) = 0\n"),
            "t.strace:1: unterminated arguments of read (no closing parenthesis)"
        );
        assert_eq!(e("close(0)\n"), "t.strace:1: missing return value of close");
        assert_eq!(
            e("12 <... read resumed>) = 0\n"),
            "t.strace:1: read resumed in pid 12 without an unfinished read call"
        );
        assert_eq!(
            e("hello world\n"),
            "t.strace:1: not a system call line: \"hello world\""
        );
        assert_eq!(
            e("read(0, \"\", 1) = 0\nclo"),
            "t.strace:2: truncated last line \"clo\" (cut off before a call)"
        );
    }

    #[test]
    fn raw_numbers_and_cut_last_line() {
        let t = parse("syscall_0x1ab(0x1, 0x2) = -1 ENOSYS (Function not implemented)\nsyscall_12(0) = 0\nread(3, \"abc").unwrap();
        assert_eq!(
            t.events.iter().map(|e| e.nr).collect::<Vec<_>>(),
            vec![0x1ab, 12, 0]
        );
    }

    #[test]
    fn tracer_message_inside_a_line_and_unknown_ip() {
        let t = parse(
            "rt_sigprocmask(SIG_SETMASK, ~[RTMIN RT_1], NULL, 8) = 0\n\
             vfork(strace: Process 20247 attached\n \
             <unfinished ...>\n\
             [pid 20247] execve(\"/usr/bin/id\", [\"id\"], 0x55 /* 35 vars */ <unfinished ...>\n\
             [pid 20246] <... vfork resumed>)        = 20247\n\
             [pid 20247] <... execve resumed>)       = 0\n\
             [pid 20247] +++ exited with 0 +++\n\
             <... wait4 resumed>[{WIFEXITED(s) && WEXITSTATUS(s) == 0}], 0, NULL) = 20247\n",
        );
        // wait4 was never started: an error naming it.
        assert_eq!(
            t.unwrap_err().to_string(),
            "t.strace:8: wait4 resumed in pid 20246 without an unfinished wait4 call"
        );
        let t = parse(
            "     0.000084 [00007f2d8f282409] exit_group(0) = ?\n     \
             0.000175 [????????????????] +++ exited with 0 +++\n",
        )
        .unwrap();
        assert_eq!(calls(&t), vec![(0, "exit_group")]);
        assert_eq!(t.events[0].ts_ns, Some(84_000));
    }
}
