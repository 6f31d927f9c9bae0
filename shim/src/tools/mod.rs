//! Offline subcommands: `profile …`, `eval`, `score`. Each is a short function over the
//! profiler library; printing for people happens here and nowhere below.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use ngram_profiler::alert;
use ngram_profiler::eval::{self, EvalConfig, EvalReport};
use ngram_profiler::export;
use ngram_profiler::ngram::NgramCounts;
use ngram_profiler::profile::{Mode, ProfileMeta};
use ngram_profiler::score::{self, CalibrationMethod, Model, ScoreConfig, ScoreKind};
use ngram_profiler::sgt::SgtFit;
use ngram_profiler::store::{self, Store, StoreError};
use ngram_profiler::trace::{self, Format, Trace};

/// The tool subcommands (everything that is not runc's command line).
#[derive(Debug, Subcommand)]
pub enum ToolCmd {
    /// Manage learned profiles.
    Profile(ProfileArgs),
    /// Offline evaluation: train, calibrate on part of the normal traces, test on the rest and
    /// on the attacks; AUC, detection and false-alarm rates, latency, side by side with STIDE.
    Eval(EvalArgs),
    /// Score traces against a stored profile; exit status 3 when any trace is anomalous.
    Score(ScoreArgs),
    /// Show the alerts supervisors wrote, explained.
    Alerts(AlertsArgs),
    /// Internal: the supervisor of one container (started by `create`).
    #[command(name = "__supervise", hide = true)]
    Supervise(crate::supervisor::SuperviseArgs),
    /// Internal: the guard that stops a container whose supervisor died.
    #[command(name = "__guard", hide = true)]
    Guard(crate::supervisor::GuardArgs),
}

#[derive(Debug, Args)]
pub struct AlertsArgs {
    /// The alert log.
    #[arg(long, env = "NGRAM_IDS_ALERTS", default_value = alert::DEFAULT_LOG)]
    pub file: PathBuf,
    /// Keep printing alerts as they are written.
    #[arg(short, long)]
    pub follow: bool,
    /// Only this container (id prefix or name).
    #[arg(long)]
    pub container: Option<String>,
    /// The raw JSON lines (Falco's shape).
    #[arg(long)]
    pub json: bool,
}

/// Exit status of `score` when a trace is over the profile's threshold.
pub const EXIT_ANOMALY: u8 = 3;

/// How windows are scored (defaults: the choice of docs/evaluation.md).
#[derive(Debug, Clone, Args)]
pub struct ScoreOpts {
    /// Window score: mean negative log-probability (nll), rate of unseen n-grams (stide), or
    /// rate of n-grams with probability below --rare-p (rare).
    #[arg(long, value_parser = ["nll", "stide", "rare"])]
    pub scoring: Option<String>,
    /// Probability below which an n-gram counts as rare (with --scoring rare).
    #[arg(long, default_value_t = 1e-3)]
    pub rare_p: f64,
    /// Window length in n-grams (0: the whole thread so far).
    #[arg(long)]
    pub window: Option<usize>,
}

impl ScoreOpts {
    fn apply(&self, mut cfg: ScoreConfig) -> ScoreConfig {
        match self.scoring.as_deref() {
            Some("nll") => cfg.kind = ScoreKind::MeanNll,
            Some("stide") => cfg.kind = ScoreKind::Stide,
            Some("rare") => cfg.kind = ScoreKind::Rare { max_p: self.rare_p },
            _ => {}
        }
        if let Some(w) = self.window {
            cfg.window = w;
        }
        cfg
    }
}

/// How the threshold is calibrated.
#[derive(Debug, Clone, Args)]
pub struct CalibrateOpts {
    /// Target false-alarm rate over the calibration traces.
    #[arg(long, default_value_t = 0.05, conflicts_with = "max_normal")]
    pub far: f64,
    /// Threshold = the largest normal score (no calibration trace alarms).
    #[arg(long)]
    pub max_normal: bool,
}

impl CalibrateOpts {
    fn method(&self) -> CalibrationMethod {
        if self.max_normal {
            CalibrationMethod::MaxNormal
        } else {
            CalibrationMethod::FalseAlarmRate { rate: self.far }
        }
    }
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Trace format.
    #[arg(long, value_parser = parse_format)]
    pub format: Format,
    /// Normal traces to train on.
    #[arg(long, num_args = 1.., required = true)]
    pub train: Vec<PathBuf>,
    /// Normal traces held out from training: the even-indexed ones (in sorted path order)
    /// calibrate the threshold, the odd-indexed ones are tested.
    #[arg(long, num_args = 1.., required = true)]
    pub normal: Vec<PathBuf>,
    /// Attack traces (tested only; never used to calibrate).
    #[arg(long, num_args = 1.., required = true)]
    pub attack: Vec<PathBuf>,
    /// Length of the n-grams.
    #[arg(long, default_value_t = score::DEFAULT_N)]
    pub n: usize,
    #[command(flatten)]
    pub score: ScoreOpts,
    #[command(flatten)]
    pub calibrate: CalibrateOpts,
    /// Skip the STIDE baseline.
    #[arg(long)]
    pub no_baseline: bool,
    /// One JSON object (keys auc, detection_rate, false_alarm_rate, threshold, n, …).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ScoreArgs {
    #[command(flatten)]
    pub db: DbArg,
    /// Profile name or key.
    pub name: String,
    /// Trace format.
    #[arg(long, value_parser = parse_format)]
    pub format: Format,
    /// Trace files or directories of them.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// JSON lines, one per trace.
    #[arg(long)]
    pub json: bool,
}

/// Where the profile database lives.
#[derive(Debug, Clone, Args)]
pub struct DbArg {
    /// Profile database directory.
    #[arg(long, global = true, env = "NGRAM_IDS_DB", default_value = store::DEFAULT_DIR)]
    pub db: PathBuf,
}

#[derive(Debug, Args)]
pub struct ProfileArgs {
    #[command(flatten)]
    pub db: DbArg,
    #[command(subcommand)]
    pub cmd: ProfileCmd,
}

#[derive(Debug, Subcommand)]
pub enum ProfileCmd {
    /// Learn from recorded traces: merge their n-gram counts into profile NAME.
    Train {
        /// Profile name (created when missing).
        name: String,
        /// Trace format.
        #[arg(long, value_parser = parse_format)]
        format: Format,
        /// Length of the n-grams (1..=16). Default: the existing profile's n, else 6.
        #[arg(long)]
        n: Option<usize>,
        /// Trace files or directories of them.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// List stored profiles.
    List,
    /// Show one profile: learning progress, mode, threshold.
    Show {
        name: String,
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Remove a profile.
    Rm { name: String },
    /// Merge the counts of profiles SRC… into DST (created when missing).
    Merge {
        dst: String,
        #[arg(required = true)]
        srcs: Vec<String>,
    },
    /// Calibrate the profile's threshold on normal traces held out from its training.
    Calibrate {
        name: String,
        /// Trace format.
        #[arg(long, value_parser = parse_format)]
        format: Format,
        /// Normal traces (never attacks, never the training traces).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        #[command(flatten)]
        score: ScoreOpts,
        #[command(flatten)]
        calibrate: CalibrateOpts,
    },
    /// Set the stored mode of a profile.
    Promote {
        name: String,
        /// The new mode.
        #[arg(long = "to")]
        to: Mode,
    },
    /// Write a Docker/OCI seccomp JSON allowlist of every system call the profile saw.
    ExportSeccomp {
        name: String,
        /// Output file (default: standard output). Written atomically.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
}

fn parse_format(s: &str) -> Result<Format, String> {
    s.parse()
}

/// Run one tool subcommand.
pub fn run(cmd: ToolCmd) -> Result<ExitCode> {
    match cmd {
        ToolCmd::Profile(args) => profile(&args.db.db, args.cmd),
        ToolCmd::Eval(args) => run_eval(&args),
        ToolCmd::Score(args) => run_score(&args),
        ToolCmd::Alerts(args) => run_alerts(&args),
        ToolCmd::Supervise(args) => {
            crate::supervisor::run_supervise(&args).map(|()| ExitCode::SUCCESS)
        }
        ToolCmd::Guard(args) => crate::supervisor::run_guard(&args).map(|()| ExitCode::SUCCESS),
    }
}

fn run_alerts(args: &AlertsArgs) -> Result<ExitCode> {
    use std::io::{BufRead, Seek};
    use std::os::unix::fs::MetadataExt;

    let open = || {
        std::fs::File::open(&args.file)
            .with_context(|| format!("cannot read alert log {}", args.file.display()))
    };
    let mut file = match open() {
        Ok(f) => f,
        // Following a log nobody wrote yet: wait for it.
        Err(_) if args.follow && !args.file.exists() => loop {
            std::thread::sleep(std::time::Duration::from_millis(250));
            if let Ok(f) = open() {
                break f;
            }
        },
        Err(e) => return Err(e),
    };
    let mut reader = std::io::BufReader::new(file.try_clone()?);
    let mut lineno = 0usize;
    let mut pending = String::new();
    let mut out = std::io::stdout().lock();
    loop {
        let mut buf = String::new();
        let n = reader.read_line(&mut buf)?;
        if n > 0 {
            pending.push_str(&buf);
            if !pending.ends_with('\n') {
                // A line still being written: wait for the rest.
                if !args.follow {
                    break;
                }
                continue;
            }
            lineno += 1;
            let line = std::mem::take(&mut pending);
            let (id, name, text) = match alert::parse_line(&args.file, lineno, line.trim_end()) {
                Ok(a) => (
                    a.container_id.clone(),
                    a.container_name.clone(),
                    a.summary(),
                ),
                // Events that are not anomalies (a supervisor that died) have their own rule.
                Err(e) => match serde_json::from_str::<alert::FalcoLine>(line.trim_end()) {
                    Ok(f) if f.source == "ngram-ids" => {
                        let field = |k: &str| {
                            f.output_fields
                                .get(k)
                                .and_then(|v| v.as_str())
                                .unwrap_or("")
                                .to_owned()
                        };
                        (field("container.id"), field("container.name"), f.output)
                    }
                    _ => return Err(e.into()),
                },
            };
            let wanted = args
                .container
                .as_deref()
                .is_none_or(|c| id.starts_with(c) || name == c);
            if wanted {
                if args.json {
                    out.write_all(line.as_bytes())?;
                } else {
                    writeln!(out, "{text}")?;
                }
                out.flush()?;
            }
            continue;
        }
        if !args.follow {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
        // Rotated or truncated: start over on the new file.
        let pos = reader.stream_position()?;
        let (old, new) = (file.metadata()?, std::fs::metadata(&args.file).ok());
        if new.is_some_and(|m| m.ino() != old.ino() || m.len() < pos) {
            file = open()?;
            reader = std::io::BufReader::new(file.try_clone()?);
            lineno = 0;
            pending.clear();
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn run_eval(args: &EvalArgs) -> Result<ExitCode> {
    let train = read_traces(args.format, &args.train, "reading training traces")?;
    let normal = read_traces(args.format, &args.normal, "reading normal traces")?;
    let attack = read_traces(args.format, &args.attack, "reading attack traces")?;
    let cfg = EvalConfig {
        n: args.n,
        score: args.score.apply(ScoreConfig::default()),
        calibration: args.calibrate.method(),
        baseline: if args.no_baseline {
            None
        } else {
            EvalConfig::default().baseline
        },
    };
    let report = eval::evaluate(&train, &normal, &attack, &cfg)?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_eval("ngram-ids", &report);
        println!("  first alarm in each attack trace:");
        for a in &report.attacks {
            match a.first_alarm {
                Some(k) => println!("    {}: call {k} of {}", a.source, a.calls),
                None => println!("    {}: not detected ({} calls)", a.source, a.calls),
            }
        }
        if let Some(b) = &report.baseline {
            println!();
            print_eval("baseline", b);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_eval(label: &str, r: &EvalReport) {
    let c = &r.counts;
    println!(
        "{label}: n = {}, scoring {}",
        r.n,
        serde_json::to_string(&r.score).unwrap_or_default()
    );
    println!(
        "  trained on {} traces ({} calls): {} distinct n-grams, P0 {:.4}",
        c.train_traces, c.train_calls, c.distinct_ngrams, c.p0
    );
    println!(
        "  threshold {:.4} calibrated on {} normal traces ({:?})",
        r.threshold, c.calibration_traces, r.calibration.method
    );
    println!("  AUC                      {:.4}", r.auc);
    println!(
        "  detection rate           {:.4} ({} of {} attack traces)",
        r.detection_rate, c.detected, c.attack_traces
    );
    println!(
        "  false-alarm rate         {:.4} ({} of {} normal test traces)",
        r.false_alarm_rate, c.false_alarms, c.normal_test_traces
    );
    println!("  consecutive false alarms {}", r.consecutive_false_alarms);
    if let Some(m) = r.median_first_alarm {
        println!("  median first alarm       call {m} of the attack trace");
    }
}

fn run_score(args: &ScoreArgs) -> Result<ExitCode> {
    let p = Store::open(&args.db.db)?.load(&args.name)?;
    let model = Model::new(&p.counts)?;
    let threshold = p.meta.calibration.as_ref().map(|c| c.threshold);
    let traces = read_traces(args.format, &args.paths, "scoring")?;
    let mut anomalies = 0usize;
    for t in &traces {
        let s = score::score_trace(&model, p.meta.score, t, threshold)?;
        // score_trace's own rule: some window (or thread mean) over the threshold.
        let anomalous = s.alarm_windows > 0;
        anomalies += usize::from(anomalous);
        if args.json {
            let mut v = serde_json::to_value(&s)?;
            v["source"] = serde_json::json!(t.source);
            v["anomalous"] = serde_json::json!(anomalous);
            if let Some(a) = &s.first_alarm {
                v["explanation"] = serde_json::json!(a.describe(p.meta.arch));
            }
            println!("{v}");
        } else {
            let verdict = match (threshold, anomalous) {
                (None, _) => "uncalibrated",
                (Some(_), true) => "ANOMALY",
                (Some(_), false) => "normal",
            };
            println!(
                "{}: {verdict} score {:.4} ({} n-grams, {} unseen)",
                t.source, s.score, s.ngrams, s.unseen
            );
            if let Some(a) = &s.first_alarm {
                println!("  first alarm: {}", a.describe(p.meta.arch));
            }
        }
    }
    if threshold.is_none() {
        eprintln!(
            "ngram-ids: profile {} is not calibrated: run `ngram-ids profile calibrate {} …` on normal traces",
            p.meta.name, p.meta.name
        );
    }
    Ok(if anomalies > 0 {
        ExitCode::from(EXIT_ANOMALY)
    } else {
        ExitCode::SUCCESS
    })
}

fn profile(db: &Path, cmd: ProfileCmd) -> Result<ExitCode> {
    match cmd {
        ProfileCmd::Train {
            name,
            format,
            n,
            paths,
        } => {
            // Train the profile the name resolves to (a key, or the one profile of that name,
            // e.g. an image's), or a new one keyed by the name.
            let (key, existing) = match Store::open(db)?.meta(&name) {
                Ok(m) => (m.key, Some(m.n)),
                Err(StoreError::NotFound { .. }) => (name.clone(), None),
                Err(e) => return Err(e.into()),
            };
            let n = match (n, existing) {
                (Some(n), Some(e)) if n != e => {
                    bail!("profile {name} has n = {e}, not {n}: train another profile or drop --n")
                }
                (n, e) => n.or(e).unwrap_or(score::DEFAULT_N),
            };
            let (counts, runs) = count_traces(format, n, &paths)?;
            let store = Store::open(db)?;
            let meta = store.train(&key, &name, &counts, runs, store::now_secs())?;
            println!(
                "profile {}: +{} runs, {} calls, {} distinct {}-grams, P0 {:.4}",
                meta.name, runs, meta.calls, meta.distinct, meta.n, meta.p0
            );
        }
        ProfileCmd::List => {
            let store = Store::open(db)?;
            print_list(&store.list()?);
        }
        ProfileCmd::Show { name, json } => {
            let store = Store::open(db)?;
            let p = store.load(&name)?;
            drop(store);
            let syscalls: Vec<String> = p
                .counts
                .syscalls()
                .into_iter()
                .map(|nr| p.meta.arch.display(nr))
                .collect();
            let fit = match p.counts.sgt().fit {
                SgtFit::LogLinear { a, b, switch_r } => format!(
                    "log-linear fit log Z_r = {a:.4} {b:+.4} log r, Turing estimates below r = {switch_r}"
                ),
                SgtFit::Fallback(why) => format!("no usable fit ({why}): P0 = N1/N, the rest by MLE"),
            };
            if json {
                let mut v = serde_json::to_value(&p.meta)?;
                v["syscalls"] = serde_json::json!(syscalls);
                v["sgt"] = serde_json::json!(fit);
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                print_show(&p.meta, &syscalls, &fit);
            }
        }
        ProfileCmd::Rm { name } => {
            let key = Store::open(db)?.remove(&name)?;
            println!("removed profile {key}");
        }
        ProfileCmd::Merge { dst, srcs } => {
            let meta = Store::open(db)?.merge(&dst, &srcs, store::now_secs())?;
            println!(
                "profile {}: {} runs, {} calls, {} distinct {}-grams, P0 {:.4}",
                meta.name, meta.runs, meta.calls, meta.distinct, meta.n, meta.p0
            );
        }
        ProfileCmd::Calibrate {
            name,
            format,
            paths,
            score: opts,
            calibrate: cal,
        } => {
            let p = Store::open(db)?.load(&name)?;
            let cfg = opts.apply(p.meta.score);
            let model = Model::new(&p.counts)?;
            let traces = read_traces(format, &paths, "calibrating")?;
            let scores = traces
                .iter()
                .map(|t| score::score_trace(&model, cfg, t, None).map(|s| s.score))
                .collect::<Result<Vec<_>, _>>()?;
            let c = score::calibrate(&scores, cal.method())?;
            // The store is not held while scoring: others may train meanwhile.
            let meta = Store::open(db)?.update_meta(&name, |m| {
                m.score = cfg;
                m.calibration = Some(c);
            })?;
            println!(
                "profile {}: threshold {:.6} from {} normal traces ({:.4} of them above it)",
                meta.name, c.threshold, c.normal, c.normal_alarm_rate
            );
        }
        ProfileCmd::Promote { name, to } => {
            let meta = Store::open(db)?.update_meta(&name, |m| m.pin_mode(to))?;
            println!("profile {}: mode {}", meta.name, meta.mode);
        }
        ProfileCmd::ExportSeccomp { name, output } => {
            let p = Store::open(db)?.load(&name)?;
            let json = export::seccomp_json(&p.meta, &p.counts.syscalls())?;
            match output {
                Some(path) => write_atomic(&path, json.as_bytes())?,
                None => std::io::stdout().write_all(json.as_bytes())?,
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Read every trace under `paths` and count its n-grams; returns the counts and the number of
/// traces (training runs).
fn count_traces(format: Format, n: usize, paths: &[PathBuf]) -> Result<(NgramCounts, u64)> {
    let files = list_all(paths)?;
    let bar = progress(files.len(), "training");
    let mut counts: Option<NgramCounts> = None;
    let mut runs = 0u64;
    for file in &files {
        for t in trace::read_path(format, file)? {
            let c = match &mut counts {
                Some(c) => c,
                None => counts.insert(NgramCounts::new(n, t.arch)?),
            };
            if c.arch() != t.arch {
                bail!(
                    "{}: {:?} system-call numbers, but earlier traces were {:?}; train them into separate profiles",
                    t.source,
                    t.arch,
                    c.arch()
                );
            }
            c.add_events(&t.events);
            runs += 1;
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let counts = counts.context("no traces read")?;
    Ok((counts, runs))
}

/// Read every trace under `paths`, with a progress bar on a terminal.
pub fn read_traces(format: Format, paths: &[PathBuf], what: &str) -> Result<Vec<Trace>> {
    let files = list_all(paths)?;
    let bar = progress(files.len(), what);
    let mut out = Vec::with_capacity(files.len());
    for file in &files {
        out.extend(trace::read_path(format, file)?);
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(out)
}

fn list_all(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for p in paths {
        files.extend(trace::list_files(p)?);
    }
    Ok(files)
}

/// A progress bar on standard error; hidden when that is not a terminal.
fn progress(len: usize, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len as u64);
    if let Ok(style) = ProgressStyle::with_template("{msg} {bar:40} {pos}/{len} files {eta}") {
        bar.set_style(style);
    }
    bar.set_message(what.to_owned());
    bar
}

fn print_list(list: &[ProfileMeta]) {
    println!(
        "{:<24} {:<8} {:>2} {:>6} {:>12} {:>9} {:>9} {:>10}  LAST TRAINED",
        "NAME", "MODE", "N", "RUNS", "CALLS", "DISTINCT", "P0", "THRESHOLD"
    );
    for m in list {
        println!(
            "{:<24} {:<8} {:>2} {:>6} {:>12} {:>9} {:>9.2e} {:>10}  {}",
            m.name,
            m.mode,
            m.n,
            m.runs,
            m.calls,
            m.distinct,
            m.p0,
            m.calibration
                .as_ref()
                .map_or_else(|| "-".to_owned(), |c| format!("{:.4}", c.threshold)),
            m.last_trained.map_or_else(|| "-".to_owned(), fmt_time)
        );
    }
}

fn print_show(m: &ProfileMeta, syscalls: &[String], fit: &str) {
    println!("profile      {}", m.name);
    println!("key          {}", m.key);
    println!("mode         {}", m.mode);
    println!("n            {}", m.n);
    println!("arch         {:?}", m.arch);
    println!("runs         {}", m.runs);
    println!("calls seen   {}", m.calls);
    println!("n-grams      {} ({} distinct)", m.ngrams, m.distinct);
    println!(
        "P0           {:.6}  (chance that the next n-gram is new)",
        m.p0
    );
    println!("smoothing    Simple Good-Turing, {fit}");
    if let Some(c) = &m.calibration {
        println!("threshold    {:.6}", c.threshold);
    } else {
        println!("threshold    not calibrated");
    }
    println!(
        "trained      {} .. {}",
        m.first_trained.map_or_else(|| "-".to_owned(), fmt_time),
        m.last_trained.map_or_else(|| "-".to_owned(), fmt_time)
    );
    if m.p0_history.len() > 1 {
        let curve: Vec<String> = m
            .p0_history
            .iter()
            .rev()
            .take(8)
            .rev()
            .map(|p| format!("{}:{:.2e}", p.calls, p.p0))
            .collect();
        println!("P0 history   {}", curve.join(" "));
    }
    println!("syscalls     {} {}", syscalls.len(), syscalls.join(" "));
}

fn fmt_time(secs: u64) -> String {
    alert::civil(secs)
}

/// Write `bytes` to `path` through a temporary file in the same directory and a rename.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot create a file in {}", dir.display()))?;
    tmp.write_all(bytes)
        .and_then(|()| tmp.as_file().sync_all())
        .with_context(|| format!("cannot write {}", path.display()))?;
    tmp.persist(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
