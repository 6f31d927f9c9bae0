//! `ngram-ids dashboard`, run as a user would: the real binary on a free loopback port over a
//! temporary state root (a status file written by the supervisor's own writer), a store with a
//! profile trained by the CLI and an alert log; the JSON API, the live stream, `/metrics`, the
//! token, and bad input. `promtool check metrics` and a real Prometheus scraping the dashboard
//! need Debian's `prometheus` package: they are #[ignore]d here and run by `make unit`.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ngram_profiler::alert::{Action, Alert, Rule};
use ngram_supervisor::status::{self, Status};
use serde_json::Value;

const ID: &str = "0123456789abcdef0123456789abcdef";
const CALLS: u64 = 1234;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ngram-ids"))
}

fn now_ns() -> u64 {
    u64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    )
    .unwrap()
}

/// What the dashboard reads: a state root with one traced container, a store with profile
/// `web`, an alert log with one alert.
struct Fixture {
    tmp: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let f = Self { tmp };
        let dir = f.root().join(ID);
        std::fs::create_dir_all(&dir).unwrap();
        f.write_status();
        // A profile trained by the CLI from small ADFA-style traces (i386 numbers), in three
        // merges, so its learning curve has three points.
        for i in 0..3usize {
            let traces = f.tmp.path().join(format!("traces{i}"));
            std::fs::create_dir_all(&traces).unwrap();
            let mut calls = String::new();
            for r in 0..(20 + 10 * i) {
                for (j, nr) in [3, 4, 5, 6, 3, 4, 192, 91, 3, 4, 6].iter().enumerate() {
                    let nr = if (r + j + i) % 17 == 0 { 4 } else { *nr };
                    calls.push_str(&format!("{nr} "));
                }
            }
            std::fs::write(traces.join("t.txt"), calls).unwrap();
            let out = bin()
                .args(["profile", "train", "web", "--format", "adfa", "--n", "3"])
                .arg(&traces)
                .arg("--db")
                .arg(f.db())
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::fs::write(f.log(), alert_line("web-1", Rule::Sequence)).unwrap();
        f
    }

    fn root(&self) -> PathBuf {
        self.tmp.path().join("moby")
    }

    fn db(&self) -> PathBuf {
        self.tmp.path().join("db")
    }

    fn log(&self) -> PathBuf {
        self.tmp.path().join("alerts.jsonl")
    }

    /// The supervisor's status, written as the supervisor writes it, fresh.
    fn write_status(&self) {
        let s = Status {
            container_id: ID.into(),
            container_name: "web-1".into(),
            image: "ngram-nginx".into(),
            profile: "web".into(),
            profile_key: "web".into(),
            mode: "alert".into(),
            tracer: "notify".into(),
            pid: 4242,
            started_ns: now_ns() - 10_000_000_000,
            updated_ns: now_ns(),
            calls: CALLS,
            anomalies: 1,
            alerts: 1,
            cpu_seconds: 0.5,
            rss_bytes: 12 << 20,
            ..Status::default()
        };
        status::write(&self.root().join(ID), &s).unwrap();
    }

    /// Start the dashboard with `extra` arguments.
    fn start(&self, extra: &[&str]) -> Dashboard {
        let mut child = bin()
            .arg("dashboard")
            .arg("--state-root")
            .arg(self.root())
            .arg("--db")
            .arg(self.db())
            .arg("--alerts")
            .arg(self.log())
            .args(extra)
            .env_remove("NGRAM_IDS_DASHBOARD_TOKEN")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        let addr = first
            .split("http://")
            .nth(1)
            .and_then(|s| s.split('/').next())
            .unwrap_or_else(|| {
                let mut err = String::new();
                child
                    .stderr
                    .take()
                    .unwrap()
                    .read_to_string(&mut err)
                    .unwrap();
                panic!("no address in {first:?}; stderr: {err}")
            })
            .parse()
            .unwrap();
        Dashboard { child, addr }
    }
}

fn alert_line(name: &str, rule: Rule) -> String {
    let a = Alert {
        time_ns: now_ns(),
        latency_ns: 7_000,
        container_id: ID.into(),
        container_name: name.into(),
        image: "ngram-nginx".into(),
        profile: "web".into(),
        pid: 4242,
        tid: 4243,
        exe: "/usr/sbin/nginx".into(),
        ngram: vec!["read".into(), "socket".into(), "connect".into()],
        probability: 2.5e-6,
        seen: false,
        window_score: 0.8,
        threshold: 0.4,
        action: Action::Alerted,
        errno: None,
        rule,
        argument: None,
        fd_name: None,
        fd_sip: None,
        fd_sport: None,
        tracer: None,
        unjudged: Vec::new(),
    };
    format!("{}\n", serde_json::to_string(&a.to_falco("host")).unwrap())
}

/// The running dashboard; killed when dropped.
struct Dashboard {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Dashboard {
    fn get(&self, path: &str) -> (u16, String) {
        http_get(self.addr, path, &[])
    }

    /// `path`'s JSON once `ready` holds of it (within 15 s).
    fn json_when(&self, path: &str, ready: impl Fn(&Value) -> bool) -> Value {
        let start = Instant::now();
        loop {
            let v = self.json(path);
            if ready(&v) || start.elapsed() > Duration::from_secs(15) {
                return v;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn json(&self, path: &str) -> Value {
        let (code, body) = self.get(path);
        assert_eq!(code, 200, "{path}: {body}");
        serde_json::from_str(&body).unwrap()
    }
}

/// One HTTP/1.0 GET (the answer ends when the server closes): status and body.
fn http_get(addr: SocketAddr, path: &str, headers: &[&str]) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n");
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let (head, body) = resp.split_once("\r\n\r\n").unwrap();
    let code = head.split(' ').nth(1).unwrap().parse().unwrap();
    (code, body.to_owned())
}

#[test]
fn serves_containers_profiles_alerts_metrics_and_live_alerts() {
    let f = Fixture::new();
    let d = f.start(&["--listen", "127.0.0.1:0"]);
    let (code, page) = d.get("/");
    assert_eq!(code, 200);
    assert!(page.contains("<title>ngram-ids</title>") && page.contains("EventSource"));

    let c = d.json("/api/containers");
    let row = &c["containers"][0];
    assert_eq!(row["container_id"], ID);
    assert_eq!(row["mode"], "alert");
    assert_eq!(row["calls"], CALLS);
    assert_eq!(row["live"], true);
    assert_eq!(row["rss_bytes"], 12 << 20);

    let p = d.json("/api/profiles");
    let web = &p["profiles"][0];
    assert_eq!(web["name"], "web");
    assert_eq!(web["state"], "learning");
    assert_eq!(web["runs"], 3);
    assert_eq!(web["p0_history"].as_array().unwrap().len(), 3);
    assert_eq!(web["promotion"]["max_p0"], 0.005);
    assert!(web["syscalls"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s == "read"));
    assert!(p["note"].is_null(), "{p}");

    // The log is read on a thread of its own from the start: wait for its first line.
    let a = d.json_when("/api/alerts", |a| a["total"] != 0);
    assert_eq!(a["total"], 1);
    let first = &a["alerts"][0];
    assert_eq!(first["kind"], "sequence");
    assert_eq!(first["priority"], "Warning");
    assert_eq!(first["anomaly"]["ngram"][2], "connect");
    assert_eq!(first["anomaly"]["threshold"], 0.4);
    assert_eq!(
        d.json("/api/alerts?rule=argument")["alerts"],
        serde_json::json!([])
    );
    assert_eq!(
        d.json("/api/alerts?container=web-1&priority=warning")["alerts"][0]["seq"],
        1
    );

    let (code, metrics) = d.get("/metrics");
    assert_eq!(code, 200);
    let line = format!(
        r#"ngram_ids_calls_total{{container="web-1",container_id="{}",image="ngram-nginx",profile="web",mode="alert",tracer="notify"}} {CALLS}"#,
        &ID[..12]
    );
    assert!(
        metrics.lines().any(|l| l == line),
        "no {line} in\n{metrics}"
    );
    assert!(metrics.contains(r#"ngram_ids_profile_runs_total{profile="web",key="web"} 3"#));

    // A live alert: appended to the log, it arrives on the stream without a new request.
    let mut sse = TcpStream::connect(d.addr).unwrap();
    sse.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    write!(
        sse,
        "GET /api/alerts/stream?rule=argument HTTP/1.0\r\nHost: {}\r\n\r\n",
        d.addr
    )
    .unwrap();
    let mut reader = BufReader::new(sse.try_clone().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert!(
        line.starts_with("HTTP/1.0 200") || line.starts_with("HTTP/1.1 200"),
        "{line}"
    );
    let mut log = std::fs::OpenOptions::new()
        .append(true)
        .open(f.log())
        .unwrap();
    // Filtered out by the stream's rule, then one that passes.
    log.write_all(alert_line("web-1", Rule::Sequence).as_bytes())
        .unwrap();
    log.write_all(alert_line("web-live", Rule::Argument).as_bytes())
        .unwrap();
    let start = Instant::now();
    let data = loop {
        line.clear();
        assert!(reader.read_line(&mut line).unwrap() > 0, "stream closed");
        if let Some(d) = line.strip_prefix("data: ") {
            if d.starts_with('{') {
                break d.to_owned();
            }
        }
        assert!(start.elapsed() < Duration::from_secs(15), "no live alert");
    };
    let live: Value = serde_json::from_str(data.trim()).unwrap();
    assert_eq!(live["container_name"], "web-live");
    assert_eq!(live["kind"], "argument");
    assert_eq!(live["seq"], 3);
    // The page going away mid-stream does not stop the server.
    drop(reader);
    drop(sse);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(d.json("/api/alerts")["total"], 3);

    // A supervisor that stopped writing its status shows as stopped after 5 s.
    let mut s = status::read(&f.root().join(ID)).unwrap();
    s.updated_ns = now_ns() - 6_000_000_000;
    status::write(&f.root().join(ID), &s).unwrap();
    assert_eq!(d.json("/api/containers")["containers"][0]["live"], false);
}

#[test]
fn a_token_is_required_off_loopback_and_checked_on_every_request() {
    let f = Fixture::new();
    let out = bin()
        .args(["dashboard", "--listen", "0.0.0.0:0", "--db"])
        .arg(f.db())
        .env_remove("NGRAM_IDS_DASHBOARD_TOKEN")
        .output()
        .unwrap();
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(!out.status.success());
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("--token") && err.contains("NGRAM_IDS_DASHBOARD_TOKEN"),
        "{err}"
    );

    let d = f.start(&["--listen", "0.0.0.0:0", "--token", "s3cret"]);
    let addr = SocketAddr::from(([127, 0, 0, 1], d.addr.port()));
    for path in ["/", "/api/containers", "/metrics", "/api/alerts/stream"] {
        let (code, body) = http_get(addr, path, &[]);
        assert_eq!(code, 401, "{path}");
        assert!(body.contains("token"), "{body}");
    }
    assert_eq!(
        http_get(addr, "/metrics", &["Authorization: Bearer wrong"]).0,
        401
    );
    assert_eq!(
        http_get(addr, "/metrics", &["Authorization: Bearer s3cret"]).0,
        200
    );
    assert_eq!(http_get(addr, "/api/profiles?token=s3cret", &[]).0, 200);
}

#[test]
fn bad_input_gives_one_line_errors() {
    let f = Fixture::new();
    let fail = |args: &[&str]| -> String {
        let out = bin()
            .arg("dashboard")
            .args(args)
            .arg("--alerts")
            .arg(f.log())
            .env_remove("NGRAM_IDS_DASHBOARD_TOKEN")
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} should fail");
        String::from_utf8(out.stderr).unwrap()
    };
    let e = fail(&["--listen", "localhost"]);
    assert!(e.contains("--listen") && e.contains("ADDRESS:PORT"), "{e}");
    // A store that others may write is refused, naming it and what to do.
    let db = f.db();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o777)).unwrap();
    let e = fail(&["--listen", "127.0.0.1:0", "--db", db.to_str().unwrap()]);
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(
        e.contains(db.to_str().unwrap()) && e.contains("chmod 700"),
        "{e}"
    );
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o700)).unwrap();
    // A port in use.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().to_string();
    let e = fail(&["--listen", &port, "--db", db.to_str().unwrap()]);
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(
        e.contains("cannot listen on") && e.contains("--listen"),
        "{e}"
    );
}

/// A Debian package's program, or a failure saying which package to install.
fn tool(name: &str, package: &str) -> Command {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "{name} not found: apt-get install {package} (scripts/setup-host.sh does)"
    );
    Command::new(name)
}

#[test]
#[ignore = "needs promtool (Debian's prometheus package); run by make unit"]
fn promtool_accepts_the_metrics() {
    let f = Fixture::new();
    let d = f.start(&["--listen", "127.0.0.1:0"]);
    let (code, metrics) = d.get("/metrics");
    assert_eq!(code, 200);
    let mut check = tool("promtool", "prometheus")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    check
        .stdin
        .take()
        .unwrap()
        .write_all(metrics.as_bytes())
        .unwrap();
    let out = check.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n{metrics}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A child process killed when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
#[ignore = "needs Debian's prometheus package; run by make unit"]
fn prometheus_scrapes_the_dashboard() {
    let f = Fixture::new();
    let d = f.start(&["--listen", "127.0.0.1:0", "--token", "scrape-token"]);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let prom_addr = SocketAddr::from(([127, 0, 0, 1], port));
    let dir = f.tmp.path().join("prometheus");
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: ngram-ids\n    authorization:\n      credentials: scrape-token\n    static_configs:\n      - targets: ['{}']\n",
            d.addr
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
    let _prom = Killed(
        tool("prometheus", "prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={prom_addr}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let start = Instant::now();
    let result = loop {
        // Prometheus answers once it is up; the series appears after the first scrape.
        if let Ok(s) = TcpStream::connect(prom_addr) {
            drop(s);
            let (code, body) =
                http_get(prom_addr, "/api/v1/query?query=ngram_ids_calls_total", &[]);
            if code == 200 {
                let v: Value = serde_json::from_str(&body).unwrap();
                if let Some(r) = v["data"]["result"].as_array().and_then(|r| r.first()) {
                    break r.clone();
                }
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no ngram_ids_calls_total in Prometheus after 60 s; its log: {}",
            std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(result["metric"]["container"], "web-1");
    assert_eq!(result["metric"]["mode"], "alert");
    assert_eq!(result["metric"]["job"], "ngram-ids");
    assert_eq!(result["value"][1], CALLS.to_string());
}

/// Headless Chromium (Debian's chromium and chromium-driver) through WebDriver: the page shows
/// the container in alert mode and the profile's plot with points, an alert appended to the
/// log appears without a reload and opens to its n-gram; screenshots go to
/// `$CARGO_TARGET_TMPDIR/dashboard-*.png`.
#[test]
#[ignore = "needs Debian's chromium and chromium-driver; run by make unit"]
fn a_browser_shows_containers_curves_and_live_alerts() {
    use fantoccini::{ClientBuilder, Locator};

    let f = Fixture::new();
    let d = f.start(&["--listen", "127.0.0.1:0", "--token", "browser-token"]);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _driver = Killed(
        tool("chromedriver", "chromium-driver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "chromedriver did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let chromium = tool("chromium", "chromium").get_program().to_owned();
    let profile_dir = f.tmp.path().join("chromium");
    let caps: serde_json::Map<String, Value> = serde_json::from_value(serde_json::json!({
        "goog:chromeOptions": {
            "binary": which(chromium.to_str().unwrap()),
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1400,1100", format!("--user-data-dir={}", profile_dir.display())],
        }
    }))
    .unwrap();
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let c = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .unwrap();
        let page = format!("http://{}/?token=browser-token", d.addr);
        c.goto(&page).await.unwrap();
        let wait = Duration::from_secs(20);
        // The container's row, in alert mode.
        let mode = c
            .wait()
            .at_most(wait)
            .for_element(Locator::Css(&format!(
                "#containers tr[data-id='{ID}'] .mode"
            )))
            .await
            .unwrap();
        assert_eq!(mode.text().await.unwrap(), "alert");
        // The profile's learning curve has its three points.
        c.wait()
            .at_most(wait)
            .for_element(Locator::Css("[data-profile='web'] svg .p0-point"))
            .await
            .unwrap();
        let points = c
            .find_all(Locator::Css("[data-profile='web'] svg .p0-point"))
            .await
            .unwrap();
        assert_eq!(points.len(), 3);
        c.find(Locator::Css("[data-profile='web'] .promotion-p0"))
            .await
            .unwrap();
        // The alert of the log, then a live one, without a reload.
        c.wait()
            .at_most(wait)
            .for_element(Locator::Css("#alerts details[data-seq='1']"))
            .await
            .unwrap();
        c.wait()
            .at_most(wait)
            .for_element(Locator::Css("#live.live"))
            .await
            .unwrap();
        let mut log = std::fs::OpenOptions::new()
            .append(true)
            .open(f.log())
            .unwrap();
        log.write_all(alert_line("web-live", Rule::Argument).as_bytes())
            .unwrap();
        let live = c
            .wait()
            .at_most(wait)
            .for_element(Locator::Css("#alerts details[data-seq='2']"))
            .await
            .unwrap();
        assert_eq!(c.current_url().await.unwrap().as_str(), page, "no reload");
        live.find(Locator::Css("summary"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        let ngram = live.find(Locator::Css(".ngram")).await.unwrap();
        assert_eq!(ngram.text().await.unwrap(), "read → socket → connect");
        let png = c.screenshot().await.unwrap();
        std::fs::write(out.join("dashboard-live-alert.png"), png).unwrap();
        c.close().await.unwrap();
    });
    eprintln!(
        "screenshot: {}",
        out.join("dashboard-live-alert.png").display()
    );
}

/// The full path of a program found on PATH.
fn which(name: &str) -> String {
    std::env::var_os("PATH")
        .and_then(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join(name))
                .find(|p| p.is_file())
        })
        .unwrap()
        .display()
        .to_string()
}
