//! `ngram-ids ship`: send every line of the alert log to a webhook, Falcosidekick or syslog
//! (`--alerts-to`), exactly once as far as the destination's answers tell, off every
//! supervisor's path (docs/alerts.md). One shipper per destination and alert log, started by
//! `create` when none runs (its lock is free), reading the log from a position saved after
//! each line it sent; the backlog is the log itself, bounded by its rotation. A line given up
//! (rotated away unsent, or refused) is counted and said in a Warning line of the log.

mod files;
mod sink;
pub mod state;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use ngram_profiler::alert::{self, AlertLog, Notice, NoticeKind, Rotation};

pub use self::files::Start;
use self::files::{LogReader, Lost};
pub use self::sink::Destination;
use self::sink::{SendError, Sink};
use self::state::{Files, ShipStatus};

/// How often a shipper with nothing to send looks for new lines.
const POLL: Duration = Duration::from_millis(100);
/// First wait after a failed attempt; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How often the log's files are counted while the destination is down.
const DOWN_COUNT: Duration = Duration::from_millis(250);
/// Why lines were dropped when the census finds them gone.
const ROTATED_AWAY: &str = "rotated away before they were sent (the destination was down or slow for longer than the log keeps them: --alerts-max-size, --alerts-keep)";
/// A line the destination refuses (4xx other than 408/429) is tried this many times.
const REFUSALS: u32 = 3;

#[derive(Debug, Args)]
pub struct ShipArgs {
    /// Where to send each alert line: http://HOST[:PORT]/PATH (POST of the Falco JSON line),
    /// syslog://HOST[:PORT] (RFC 5424 over UDP) or syslog:///dev/log. Repeatable.
    #[arg(long = "to", value_name = "URL", required = true)]
    pub to: Vec<Destination>,
    /// The alert log.
    #[arg(long, value_name = "FILE", env = "NGRAM_IDS_ALERTS", default_value = alert::DEFAULT_LOG)]
    pub alerts: PathBuf,
    /// The log's rotation (for the Warning lines the shipper writes itself), as the runtime's.
    #[arg(long, value_name = "MIB", default_value_t = 64)]
    pub alerts_max_size: u64,
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub alerts_keep: u32,
    /// Where a destination with no saved position starts: at the end of the log (only new
    /// alerts) or at its oldest line.
    #[arg(long, value_enum, default_value_t = Start::End)]
    pub from: Start,
}

impl ShipArgs {
    fn rotation(&self) -> Rotation {
        Rotation {
            max_bytes: self.alerts_max_size.saturating_mul(1 << 20),
            keep: self.alerts_keep,
        }
    }
}

/// `ngram-ids ship`: one thread per destination, until killed. A destination that already has
/// a shipper is left to it.
pub(crate) fn run(args: &ShipArgs) -> Result<ExitCode> {
    let mut threads = Vec::new();
    for dest in &args.to {
        let url = dest_url(dest);
        let files = Files::new(&args.alerts, &url)
            .with_context(|| format!("shipper state of {}", args.alerts.display()))?;
        let lock = files.lock_file().context("shipper lock")?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                eprintln!("ngram-ids: {url}: a shipper runs already");
                continue;
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(e).context("shipper lock"),
        }
        let _ = std::fs::write(
            state::dir(&args.alerts).join(format!("{}.pid", state::key(&url))),
            format!("{}\n", std::process::id()),
        );
        let shipper = Shipper {
            url,
            sink: Sink::new(dest.clone()),
            alerts: args.alerts.clone(),
            rotation: args.rotation(),
            files,
            start: args.from,
        };
        threads.push(
            std::thread::Builder::new()
                .name("ship".into())
                .spawn(move || {
                    // The lock lives as long as the thread.
                    let _lock = lock;
                    shipper.run()
                })?,
        );
    }
    for t in threads {
        if let Ok(Err(e)) = t.join() {
            eprintln!("ngram-ids: {e:#}");
            return Ok(ExitCode::FAILURE);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn dest_url(d: &Destination) -> String {
    match d {
        Destination::Http(u) => u.clone(),
        Destination::SyslogUdp(a) => format!("syslog://{a}"),
        Destination::SyslogLocal(p) => format!("syslog://{}", p.display()),
    }
}

/// For `create`: start a shipper for each destination that has none (detached, from our own
/// sealed binary). A destination that does not parse is an error.
pub fn ensure(
    alerts: &Path,
    to: &[String],
    max_size_mib: u64,
    keep: u32,
    exe: &Path,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    for url in to {
        let dest: Destination = url.parse()?;
        let url = dest_url(&dest);
        let files = Files::new(alerts, &url)
            .map_err(|e| format!("shipper state of {}: {e}", alerts.display()))?;
        if files.running().unwrap_or(false) {
            continue;
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(state::dir(alerts).join(format!("{}.log", state::key(&url))))
            .map_err(|e| format!("shipper log: {e}"))?;
        let mut cmd = Command::new(exe);
        cmd.arg("ship")
            .arg("--alerts")
            .arg(alerts)
            .args(["--to", &url])
            .args(["--alerts-max-size", &max_size_mib.to_string()])
            .args(["--alerts-keep", &keep.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        // The shipper outlives `create`: it must hold none of the descriptors `create` was
        // given or opened without close-on-exec (a container's sync pipe, the caller's pipes).
        ngram_supervisor::sys::exec_with_stdio_only(&mut cmd);
        cmd.spawn()
            .map_err(|e| format!("starting the alert shipper for {url}: {e}"))?;
    }
    Ok(())
}

/// One destination's shipper.
struct Shipper {
    url: String,
    sink: Sink,
    alerts: PathBuf,
    rotation: Rotation,
    files: Files,
    start: Start,
}

/// What one line's delivery came to.
enum Delivery {
    Sent,
    Refused(String),
}

impl Shipper {
    fn run(mut self) -> Result<()> {
        let saved = self.files.load_position();
        let resumed = saved.is_some();
        let (saved, mut status) = match saved {
            Some((p, s)) => (Some(p), s),
            None => (None, ShipStatus::default()),
        };
        status.destination = self.url.clone();
        status.pid = std::process::id();
        let (mut reader, lost) = LogReader::open(&self.alerts, saved, self.start);
        self.files.save_position(&reader.position(), &status)?;
        if lost.lines > 0 {
            let why = if resumed {
                "rotated away while no shipper ran (at least this many)"
            } else {
                "rotated away before they were sent"
            };
            self.dropped(&mut status, lost, why);
        }
        let mut last_status = Instant::now() - Duration::from_secs(STATUS_SECS_U);
        loop {
            if last_status.elapsed().as_secs() >= state::STATUS_SECS {
                // Its state directory removed: the log is gone, or the shipper is told to end.
                if !state::dir(&self.alerts).is_dir() {
                    return Ok(());
                }
                self.census(&mut reader, &mut status);
                last_status = Instant::now();
            }
            let Some(line) = reader.peek().context("reading the alert log")? else {
                std::thread::sleep(POLL);
                continue;
            };
            match self.deliver(&line, &mut reader, &mut status, &mut last_status) {
                Delivery::Sent => status.sent_total += 1,
                Delivery::Refused(why) => {
                    self.dropped(
                        &mut status,
                        Lost { lines: 1, files: 0 },
                        &format!("refused by the destination ({why})"),
                    );
                }
            }
            reader.advance(line.len());
            status.backlog_lines = reader.backlog();
            self.files
                .save_position(&reader.position(), &status)
                .context("saving the shipper's position")?;
            self.save_status(&mut status);
        }
    }

    /// Send `line` until the destination takes it or refuses it [`REFUSALS`] times; while it
    /// is unreachable, wait with back-off (counting the log's files meanwhile).
    fn deliver(
        &mut self,
        line: &str,
        reader: &mut LogReader,
        status: &mut ShipStatus,
        last_status: &mut Instant,
    ) -> Delivery {
        let id = reader.line_id();
        let mut backoff = FIRST_BACKOFF;
        let mut refusals = 0;
        loop {
            let why = match self.sink.send(line, &id) {
                Ok(()) => {
                    status.up = true;
                    status.last_error = None;
                    return Delivery::Sent;
                }
                Err(SendError::Refused(why)) => {
                    refusals += 1;
                    if refusals >= REFUSALS {
                        status.up = true;
                        return Delivery::Refused(why);
                    }
                    why
                }
                Err(SendError::Retry(why)) => why,
            };
            status.retries_total += 1;
            status.up = false;
            status.last_error = Some(why);
            // While the destination is down, the log's files are counted every
            // [`DOWN_COUNT`], so that a file rotated away unsent is counted even with a small
            // --alerts-max-size.
            let until = Instant::now() + backoff;
            while Instant::now() < until {
                std::thread::sleep(DOWN_COUNT.min(until.saturating_duration_since(Instant::now())));
                let lost = reader.census();
                if lost.lines > 0 {
                    self.dropped(status, lost, ROTATED_AWAY);
                }
                if last_status.elapsed().as_secs() >= state::STATUS_SECS {
                    self.census(reader, status);
                    *last_status = Instant::now();
                }
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Count the log's files (lines rotated away unsent are dropped) and write the counters.
    fn census(&self, reader: &mut LogReader, status: &mut ShipStatus) {
        let lost = reader.census();
        if lost.lines > 0 {
            self.dropped(status, lost, ROTATED_AWAY);
        }
        status.backlog_lines = reader.backlog();
        self.save_status(status);
    }

    /// Count `lost` as dropped and say it in a Warning line of the local log.
    fn dropped(&self, status: &mut ShipStatus, lost: Lost, why: &str) {
        status.dropped_total += lost.lines;
        self.save_status(status);
        let detail = format!("{}: {why}", self.url);
        eprintln!(
            "ngram-ids: warning: {} alert lines not shipped: {detail}",
            lost.lines
        );
        let notice = Notice {
            time_ns: now_ns(),
            container_id: String::new(),
            container_name: String::new(),
            kind: NoticeKind::ShipDropped { count: lost.lines },
            detail,
        };
        match AlertLog::open_with(&self.alerts, self.rotation) {
            Ok(mut log) => {
                if let Err(e) = log.write_event(&notice.into()) {
                    eprintln!("ngram-ids: {e}");
                }
            }
            Err(e) => eprintln!("ngram-ids: {e}"),
        }
    }

    fn save_status(&self, status: &mut ShipStatus) {
        status.updated_ns = now_ns();
        if let Err(e) = self.files.save_status(status) {
            eprintln!("ngram-ids: writing the shipper's status: {e}");
        }
    }
}

const STATUS_SECS_U: u64 = state::STATUS_SECS;

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}
