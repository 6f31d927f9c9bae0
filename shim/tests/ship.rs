//! `ngram-ids ship`, run as `--alerts-to` runs it: the real binary against a webhook receiver
//! on loopback (a small HTTP server in the test) over a temporary alert log written by the
//! supervisors' own writer (rotating). Every alert arrives exactly once, also across a receiver
//! restart and a shipper restart; lines rotated away while the receiver is unreachable are
//! counted as dropped and said in a Warning line.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ngram_profiler::alert::{Action, Alert, AlertLog, Rotation, Rule};
use serde_json::Value;

/// What the receiver got: each request's body and its `X-Ngram-Ids-Line`.
type Got = Arc<Mutex<Vec<(String, String)>>>;

/// A webhook on loopback that answers 200 to every POST, until stopped.
struct Receiver {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Receiver {
    fn start(port: u16, got: &Got) -> Self {
        let listener = loop {
            match TcpListener::bind(("127.0.0.1", port)) {
                Ok(l) => break l,
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        };
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let (stop2, got) = (stop.clone(), got.clone());
        let thread = std::thread::spawn(move || {
            let mut conns = Vec::new();
            while !stop2.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((s, _)) => {
                        let (stop3, got) = (stop2.clone(), got.clone());
                        conns.push(std::thread::spawn(move || serve(s, &stop3, &got)));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
            drop(listener);
            for c in conns {
                let _ = c.join();
            }
        });
        Self {
            port,
            stop,
            thread: Some(thread),
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    /// Close the port and every connection.
    fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

/// One keep-alive connection: requests in, 200 out, until the peer or `stop` ends it.
fn serve(s: TcpStream, stop: &AtomicBool, got: &Got) {
    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut w = s;
    'requests: while !stop.load(Ordering::SeqCst) {
        let mut head = Vec::new();
        loop {
            let mut line = String::new();
            match r.read_line(&mut line) {
                Ok(0) => return,
                Ok(_) => {}
                Err(_) if stop.load(Ordering::SeqCst) => return,
                Err(_) => {
                    if head.is_empty() && line.is_empty() {
                        continue 'requests;
                    }
                    continue;
                }
            }
            if line == "\r\n" {
                break;
            }
            head.push(line);
        }
        let header = |name: &str| {
            head.iter()
                .find_map(|h| {
                    let (k, v) = h.split_once(':')?;
                    k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
                })
                .unwrap_or_default()
        };
        let len: usize = header("content-length").parse().unwrap_or(0);
        let mut body = vec![0u8; len];
        let mut read = 0;
        while read < len {
            match r.read(&mut body[read..]) {
                Ok(0) => return,
                Ok(n) => read += n,
                Err(_) if stop.load(Ordering::SeqCst) => return,
                Err(_) => {}
            }
        }
        got.lock()
            .unwrap()
            .push((String::from_utf8(body).unwrap(), header("x-ngram-ids-line")));
        if w.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            .is_err()
        {
            return;
        }
    }
}

fn alert(n: u32) -> Alert {
    Alert {
        time_ns: 1_795_442_096_123_456_789 + u64::from(n),
        latency_ns: 1,
        container_id: "0123456789abcdef0123456789abcdef".into(),
        container_name: "web".into(),
        image: "ngram-nginx".into(),
        profile: "p".into(),
        pid: n,
        tid: n,
        exe: "/bin/sh".into(),
        ngram: vec!["read".into(), "execve".into()],
        probability: 1e-5,
        seen: false,
        window_score: 0.5,
        threshold: 0.25,
        action: Action::Alerted,
        errno: None,
        rule: Rule::Sequence,
        argument: None,
        fd_name: None,
        fd_sip: None,
        fd_sport: None,
        tracer: None,
        unjudged: Vec::new(),
    }
}

/// A shipper process, killed when the test ends (also when it fails).
struct Shipper(Child);

impl Shipper {
    fn kill(&mut self) -> std::io::Result<()> {
        self.0.kill()
    }

    fn wait(&mut self) -> std::io::Result<std::process::ExitStatus> {
        self.0.wait()
    }
}

impl Drop for Shipper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn shipper(log: &Path, url: &str, stderr: &Path, extra: &[&str]) -> Shipper {
    Shipper(
        Command::new(env!("CARGO_BIN_EXE_ngram-ids"))
            .arg("ship")
            .arg("--alerts")
            .arg(log)
            .args(["--to", url])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(stderr).unwrap())
            .spawn()
            .unwrap(),
    )
}

fn status(log: &Path) -> Value {
    let dir = PathBuf::from(format!("{}.ship", log.display()));
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Value::Null;
    };
    for e in entries {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "json") {
            if let Ok(v) = serde_json::from_slice(&std::fs::read(&p).unwrap()) {
                return v;
            }
        }
    }
    Value::Null
}

fn wait_for(what: &str, secs: u64, mut ok: impl FnMut() -> bool) {
    let t = Instant::now();
    while !ok() {
        assert!(t.elapsed().as_secs() < secs, "waited {secs} s for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The pids (alert numbers) of the alerts received, in order.
fn pids(got: &Got) -> Vec<u64> {
    got.lock()
        .unwrap()
        .iter()
        .filter_map(|(b, _)| {
            let v: Value = serde_json::from_str(b).unwrap();
            (v["source"] == "syscall").then(|| v["output_fields"]["proc.pid"].as_u64().unwrap())
        })
        .collect()
}

#[test]
fn every_alert_arrives_once_across_receiver_and_shipper_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("alerts.jsonl");
    let err = dir.path().join("ship.err");
    // Rotation every ~10 lines, 4 old files: the log holds ~50 lines.
    let rotation = Rotation {
        max_bytes: 10 * 900,
        keep: 4,
    };
    let mut w = AlertLog::open_with(&log, rotation).unwrap();
    let got: Got = Arc::default();
    let rx = Receiver::start(0, &got);
    let (port, url) = (rx.port, rx.url());
    let mut ship = shipper(&log, &url, &err, &["--from", "start"]);
    for n in 0..30 {
        w.write(&alert(n)).unwrap();
    }
    wait_for("30 alerts", 30, || pids(&got).len() == 30);
    // The receiver goes away; alerts are written meanwhile; the shipper retries.
    rx.stop();
    for n in 30..60 {
        w.write(&alert(n)).unwrap();
    }
    wait_for("retries", 30, || {
        status(&log)["retries_total"].as_u64().unwrap_or(0) >= 2
    });
    assert_eq!(status(&log)["up"], false);
    std::thread::sleep(Duration::from_secs(2));
    let rx = Receiver::start(port, &got);
    wait_for("60 alerts", 60, || pids(&got).len() == 60);
    // The shipper is killed; alerts are written; a new shipper resumes where it stopped.
    ship.kill().unwrap();
    ship.wait().unwrap();
    for n in 60..80 {
        w.write(&alert(n)).unwrap();
    }
    let mut ship = shipper(&log, &url, &err, &[]);
    wait_for("80 alerts", 60, || pids(&got).len() == 80);
    std::thread::sleep(Duration::from_millis(1500));
    let received = pids(&got);
    assert_eq!(
        received,
        (0..80).collect::<Vec<u64>>(),
        "each once, in order"
    );
    let ids: std::collections::HashSet<String> = got
        .lock()
        .unwrap()
        .iter()
        .map(|(_, id)| id.clone())
        .collect();
    assert_eq!(ids.len(), 80, "each line has its own X-Ngram-Ids-Line");
    let s = status(&log);
    assert_eq!(s["dropped_total"], 0, "{s}");
    assert_eq!(s["sent_total"], 80, "{s}");
    assert_eq!(s["backlog_lines"], 0, "{s}");
    assert_eq!(s["up"], true, "{s}");
    // Falco's shape, as Falcosidekick takes it.
    let first: Value = serde_json::from_str(&got.lock().unwrap()[0].0).unwrap();
    for k in [
        "output",
        "priority",
        "rule",
        "time",
        "source",
        "tags",
        "hostname",
        "output_fields",
    ] {
        assert!(first.get(k).is_some(), "{k} in {first}");
    }
    ship.kill().unwrap();
    ship.wait().unwrap();
    rx.stop();
}

#[test]
fn lines_rotated_away_while_the_receiver_is_down_are_counted_and_said() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("alerts.jsonl");
    let err = dir.path().join("ship.err");
    // Two lines a file, one old file: the log holds ~4 lines.
    let rotation = Rotation {
        max_bytes: 2 * 900,
        keep: 1,
    };
    let mut w = AlertLog::open_with(&log, rotation).unwrap();
    w.write(&alert(0)).unwrap();
    // Nobody listens on this port yet.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/");
    let mut ship = shipper(&log, &url, &err, &["--from", "start"]);
    wait_for("the shipper to try", 30, || {
        status(&log)["retries_total"].as_u64().unwrap_or(0) >= 1
    });
    for n in 1..20 {
        w.write(&alert(n)).unwrap();
        std::thread::sleep(Duration::from_millis(200));
    }
    wait_for("drops counted", 30, || {
        status(&log)["dropped_total"].as_u64().unwrap_or(0) > 0
    });
    std::thread::sleep(Duration::from_millis(1500));
    let got: Got = Arc::default();
    let rx = Receiver::start(port, &got);
    // Everything still in the log arrives; what went is counted.
    let t0 = Instant::now();
    wait_for("the backlog to drain", 90, || {
        if t0.elapsed().as_secs() == 20 {
            eprintln!(
                "DEBUG {} {} {}",
                status(&log),
                got.lock().unwrap().len(),
                std::fs::read_to_string(&err).unwrap()
            );
        }
        let s = status(&log);
        s["up"] == true && s["backlog_lines"] == 0 && {
            let all = got.lock().unwrap().len() as u64;
            all + s["dropped_total"].as_u64().unwrap() >= 20
        }
    });
    std::thread::sleep(Duration::from_millis(1500));
    let s = status(&log);
    let dropped = s["dropped_total"].as_u64().unwrap();
    let stderr = std::fs::read_to_string(&err).unwrap();
    let warnings = stderr.matches("alert lines not shipped").count() as u64;
    assert!(warnings >= 1, "{stderr}");
    let all = got.lock().unwrap().len() as u64;
    // Every line ever written (20 alerts and the shipper's Warning lines) was sent or counted.
    assert_eq!(all + dropped, 20 + warnings, "{s} {stderr}");
    let received = pids(&got);
    let mut unique = received.clone();
    unique.dedup();
    assert_eq!(unique, received, "nothing twice");
    assert!(received.contains(&0), "the line the shipper held is sent");
    // The Warning lines are in the log (and shipped like any line).
    let bodies: Vec<Value> = got
        .lock()
        .unwrap()
        .iter()
        .map(|(b, _)| serde_json::from_str(b).unwrap())
        .collect();
    assert!(
        bodies
            .iter()
            .any(|b| b["rule"] == "ngram-ids alerts not shipped"
                && b["priority"] == "Warning"
                && b["output_fields"]["ngram.dropped"].as_u64().unwrap() >= 1),
        "{bodies:?}"
    );
    assert_eq!(s["sent_total"].as_u64().unwrap(), all);
    ship.kill().unwrap();
    ship.wait().unwrap();
    rx.stop();
}

#[test]
fn a_second_shipper_for_the_same_destination_leaves_it_to_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("alerts.jsonl");
    let got: Got = Arc::default();
    let rx = Receiver::start(0, &got);
    let mut first = shipper(&log, &rx.url(), &dir.path().join("1.err"), &[]);
    wait_for("the first shipper's status", 30, || {
        status(&log) != Value::Null
    });
    let out = Command::new(env!("CARGO_BIN_EXE_ngram-ids"))
        .args(["ship", "--alerts"])
        .arg(&log)
        .args(["--to", &rx.url()])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("a shipper runs already"));
    let bad = Command::new(env!("CARGO_BIN_EXE_ngram-ids"))
        .args(["ship", "--alerts"])
        .arg(&log)
        .args(["--to", "https://x/"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("https needs a TLS proxy"));
    first.kill().unwrap();
    first.wait().unwrap();
    rx.stop();
}
