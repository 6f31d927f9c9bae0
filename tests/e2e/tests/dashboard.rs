//! The dashboard (issue 12) watching a real attack: a busybox loop trained under
//! `ngram-ids-train`, the same loop in alert mode under the real dockerd, the dashboard over the
//! host's real state root, store and alert log, and headless Chromium (Debian's `chromium` and
//! `chromium-driver`, driven through WebDriver by fantoccini). The page must show the container
//! in alert mode and the profile's learning curve with a point per training run; an attack
//! (`docker exec … cat /etc/passwd`, the image has no shadow file) must arrive in the open page over its live stream, without
//! a reload, and open to its explanation. Screenshots: `$CARGO_TARGET_TMPDIR/dashboard-e2e-*.png`.
//! Skipped unless the runtime under test is an ngram-ids registration.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use ngram_e2e::ids::{
    alert_log, ids_bin, setup_ids, wait_for_alerts, Profile, ALERT, RUNTIME_ROOT, TRAIN,
};
use ngram_e2e::{E2e, BUSYBOX};
use serde_json::{json, Value};

/// Training runs, each a merge and so a point of the learning curve.
const TRAIN_RUNS: u64 = 2;
/// How long a training merge may take to appear.
const MERGE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the page may take to show something.
const PAGE_WAIT: Duration = Duration::from_secs(30);

/// The loop of the service: write a line, read a file under /dev, sleep. Nothing under /etc
/// is read, so reading /etc/passwd is an argument never seen, besides a new call sequence.
fn service(iterations: u64) -> String {
    format!(
        "i=0; while [ $i -lt {iterations} ]; do echo tick >/dev/null; cat /dev/null; \
         sleep 0.05; i=$((i+1)); done"
    )
}

/// A child process killed when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A program of a Debian package, by full path, or a failure naming the package.
fn tool(name: &str, package: &str) -> PathBuf {
    std::env::var_os("PATH")
        .and_then(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join(name))
                .find(|p| p.is_file())
        })
        .unwrap_or_else(|| {
            panic!(
                "{name} not found: apt-get install {package} (scripts/setup-host.sh --test does)"
            )
        })
}

/// `ngram-ids dashboard` on a free loopback port over the host's real files; its address.
fn start_dashboard() -> (Killed, String) {
    let mut child = Command::new(ids_bin())
        .args([
            "dashboard",
            "--listen",
            "127.0.0.1:0",
            "--state-root",
            RUNTIME_ROOT,
        ])
        .arg("--alerts")
        .arg(alert_log())
        .env_remove("NGRAM_IDS_DASHBOARD_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start ngram-ids dashboard");
    let mut first = String::new();
    BufReader::new(child.stdout.take().expect("piped stdout"))
        .read_line(&mut first)
        .expect("the dashboard's first line");
    let addr = first
        .split("http://")
        .nth(1)
        .and_then(|s| s.split('/').next())
        .unwrap_or_else(|| panic!("no address in the dashboard's first line {first:?}"))
        .to_owned();
    (Killed(child), addr)
}

/// chromedriver on a free port, and headless Chromium through it.
async fn browser(profile_dir: &std::path::Path) -> (Killed, Client) {
    let port = ngram_e2e::free_port();
    let driver = Killed(
        Command::new(tool("chromedriver", "chromium-driver"))
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver"),
    );
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "chromedriver did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let caps: serde_json::Map<String, Value> = serde_json::from_value(json!({
        "goog:chromeOptions": {
            "binary": tool("chromium", "chromium").display().to_string(),
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1400,1100", format!("--user-data-dir={}", profile_dir.display())],
        }
    }))
    .expect("capabilities");
    let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("a WebDriver session with headless Chromium");
    (driver, client)
}

/// Starts the trained service in alert mode; its full id.
fn start_service(e: &E2e, c: &ngram_e2e::Container, profile: &Profile) -> String {
    e.run_detached_with(
        ALERT,
        c,
        &[
            "--label",
            &profile.label,
            BUSYBOX,
            "sh",
            "-c",
            &service(100_000),
        ],
    );
    e.container_id(c)
}

#[test]
fn the_dashboard_shows_a_real_attack_live_and_explains_it() {
    let Some(e) = setup_ids("the_dashboard_shows_a_real_attack_live_and_explains_it") else {
        return;
    };
    tool("chromium", "chromium");
    tool("chromedriver", "chromium-driver");
    let profile = Profile::new("dashboard");
    for run in 1..=TRAIN_RUNS {
        let c = e.container();
        e.run_with(
            TRAIN,
            &c,
            &[
                "--rm",
                "--label",
                &profile.label,
                BUSYBOX,
                "sh",
                "-c",
                &service(60),
            ],
        )
        .success();
        profile.wait_for_runs(run, MERGE_TIMEOUT);
    }
    let c = e.container();
    let id = start_service(&e, &c, &profile);
    let (_dashboard, addr) = start_dashboard();
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let tmp = ngram_e2e::TempDir::new("dashboard-chromium");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    rt.block_on(async {
        let (_driver, b) = browser(tmp.path()).await;
        let page = format!("http://{addr}/");
        b.goto(&page).await.expect("open the dashboard");
        // The container's row, in alert mode. The page rebuilds the table on every poll, so
        // an element found a moment ago may be gone when asked for its text (a stale
        // element): the row is looked up and read in one script.
        let mode_css = format!("#containers tr[data-id='{id}'] .mode");
        let deadline = Instant::now() + PAGE_WAIT;
        let mode = loop {
            let v = b
                .execute(
                    "const e = document.querySelector(arguments[0]); return e ? e.textContent : null;",
                    vec![json!(mode_css)],
                )
                .await
                .expect("script");
            if let Some(t) = v.as_str() {
                break t.to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "no row for the attacked container {id} within {PAGE_WAIT:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert_eq!(mode, "alert");
        // The profile's learning curve: a point per training merge.
        let points = format!("[data-profile='{}'] svg .p0-point", profile.name);
        b.wait()
            .at_most(PAGE_WAIT)
            .for_element(Locator::Css(&points))
            .await
            .expect("the profile's learning curve");
        let n = b
            .find_all(Locator::Css(&points))
            .await
            .expect("the curve's points")
            .len();
        assert!(
            n >= usize::try_from(TRAIN_RUNS).expect("small"),
            "{n} points for {TRAIN_RUNS} training runs"
        );
        b.wait()
            .at_most(PAGE_WAIT)
            .for_element(Locator::Css("#live.live"))
            .await
            .expect("the live stream connected");
        // A mark that a reload would wipe, and the newest alert on the page before the attack.
        let before = b
            .execute(
                "window.ngramE2eMark = 42; return Math.max(0, ...[...document.querySelectorAll('#alerts details')].map(d => +d.dataset.seq));",
                vec![],
            )
            .await
            .expect("script")
            .as_f64()
            .expect("a number");
        let png = b.screenshot().await.expect("screenshot");
        std::fs::write(out.join("dashboard-e2e-before-attack.png"), png).expect("save");

        let t0 = ngram_e2e::ids::now_ns();
        let attack = e.docker(&["exec", &c.name, "sh", "-c", "cat /etc/passwd"]);
        assert!(
            attack.stdout.lines().any(|l| l.starts_with("root:")),
            "the attack did not read /etc/passwd (alert mode refuses nothing): {attack}"
        );
        let logged = wait_for_alerts(&id, t0, Duration::from_secs(15));
        assert!(
            !logged.is_empty(),
            "the attack raised no alert in the log"
        );
        // The attack's alert arrives in the open page through the stream: a `fresh` entry
        // (made only by the stream's handler) of this container, newer than the page's.
        let fresh = format!("#alerts details.fresh[data-container='{id}']");
        let deadline = Instant::now() + PAGE_WAIT;
        let live = loop {
            let mut newest = None;
            for d in b.find_all(Locator::Css(&fresh)).await.expect("query") {
                let seq: f64 = d
                    .attr("data-seq")
                    .await
                    .expect("attr")
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0.0);
                // An anomaly (events about ngram-ids, such as a budget's summary, have no
                // n-gram).
                if seq > before && d.find(Locator::Css(".ngram")).await.is_ok() {
                    newest = Some(d);
                    break;
                }
            }
            if let Some(d) = newest {
                break d;
            }
            assert!(
                Instant::now() < deadline,
                "no live alert of {id} in the page within {PAGE_WAIT:?}; the log has {} since the attack",
                logged.len()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let mark = b
            .execute("return window.ngramE2eMark || 0;", vec![])
            .await
            .expect("script");
        assert_eq!(mark, json!(42), "the page was reloaded");
        assert_eq!(b.current_url().await.expect("url").as_str(), page);
        // It opens to its explanation: the n-gram by names, the process, the action.
        live.find(Locator::Css("summary"))
            .await
            .expect("summary")
            .click()
            .await
            .expect("open the alert");
        let ngram = live
            .find(Locator::Css(".ngram"))
            .await
            .expect("the explanation's n-gram")
            .text()
            .await
            .expect("text");
        let text = live.text().await.expect("the explanation's text");
        println!("live alert: {ngram}\n{text}");
        assert!(!ngram.is_empty(), "an empty n-gram: {text}");
        assert!(
            logged.iter().any(|a| a.ngram.join(" → ") == ngram),
            "the page's n-gram {ngram:?} is none of the logged alerts': {:?}",
            logged.iter().map(|a| a.ngram.join(" ")).collect::<Vec<_>>()
        );
        for what in ["process", "action", "alerted"] {
            assert!(text.contains(what), "no {what} in the explanation: {text}");
        }
        // The screenshot shows the opened alert, not wherever the page happened to be.
        b.execute(
            "arguments[0].scrollIntoView({block: 'center'});",
            vec![serde_json::to_value(&live).expect("an element reference")],
        )
        .await
        .expect("scroll to the alert");
        let png = b.screenshot().await.expect("screenshot");
        std::fs::write(out.join("dashboard-e2e-live-alert.png"), png).expect("save");
        b.close().await.expect("close the browser");
    });
    println!(
        "screenshots: {}/dashboard-e2e-{{before-attack,live-alert}}.png",
        out.display()
    );
}
