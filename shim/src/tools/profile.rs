//! `ngram-ids profile …`: train, list, show, remove, merge, calibrate, promote and export the
//! learned profiles. One short function per subcommand.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, Context, Result};
use clap::{Args, Subcommand};
use ngram_profiler::alert;
use ngram_profiler::profile::{Mode, ProfileMeta};
use ngram_profiler::score::{self, Model};
use ngram_profiler::sgt::SgtFit;
use ngram_profiler::store::{self, Store, StoreError};
use ngram_profiler::trace::Format;
use ngram_profiler::{apparmor, export};

use super::eval::AeOpts;
use super::opts::{parse_format, profile_name, CalibrateOpts, DbArg, Detector, Runs, ScoreOpts};
use super::traces::{count_traces, read_traces};

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
        #[arg(value_parser = profile_name)]
        name: String,
        /// Trace format.
        #[arg(long, value_parser = parse_format)]
        format: Format,
        /// Length of the n-grams (1..=16). Default: the existing profile's n, else 6.
        #[arg(long)]
        n: Option<usize>,
        /// Runs of one call: collapse or keep. Default: the existing profile's rule, else
        /// collapse.
        #[arg(long, value_enum)]
        runs: Option<Runs>,
        /// Trace files or directories of them.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// What to train: the n-gram counts (merged into the profile's), the autoencoder
        /// (trained on these traces alone, replacing the profile's), or both.
        #[arg(long, value_enum, default_value_t)]
        detector: Detector,
        #[command(flatten)]
        ae: Box<AeOpts>,
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
        #[arg(value_parser = profile_name)]
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
        /// Whose threshold: the n-gram model's, the autoencoder's, or both.
        #[arg(long, value_enum, default_value_t)]
        detector: Detector,
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
    /// Push a profile to an OCI registry as an artifact (docs/profiles.md), bound to one image.
    #[cfg(feature = "registry")]
    Push {
        name: String,
        /// Where: REGISTRY/REPOSITORY:TAG (loopback registries over plain HTTP).
        reference: String,
        /// The image (its ID, sha256:…) whose containers may use the profile. Default: the
        /// image the profile is keyed by or bound to.
        #[arg(long, conflicts_with = "any_image")]
        image: Option<String>,
        /// Push the profile bound to no image: any container naming it uses it.
        #[arg(long)]
        any_image: bool,
        #[command(flatten)]
        transport: super::registry::client::Transport,
    },
    /// Pull a profile pushed with `profile push` into the store (docs/profiles.md).
    #[cfg(feature = "registry")]
    Pull {
        /// REGISTRY/REPOSITORY:TAG or …@sha256:….
        reference: String,
        /// Store it under this name (default: the key it was pushed with).
        #[arg(long = "as", value_parser = profile_name)]
        as_name: Option<String>,
        /// Add its counts to the local profile of that name (exact sums; refused when they
        /// share an origin or are bound to different images).
        #[arg(long, conflicts_with = "replace")]
        merge: bool,
        /// Take it in place of the local profile of that name.
        #[arg(long)]
        replace: bool,
        #[command(flatten)]
        transport: super::registry::client::Transport,
    },
    /// Bind a profile to one image by digest: containers of another image naming it are
    /// refused at create (docs/profiles.md).
    Bind {
        name: String,
        /// The image: its digest (sha256:…, Docker's or Podman's image ID, or under Kubernetes
        /// the digest the pod's image reference pins), or a name the local Docker knows.
        image: String,
    },
    /// Undo `profile bind`: any container naming the profile uses it.
    Unbind { name: String },
    /// Write an AppArmor profile of the directories, programs, address families and mounts
    /// the profile's training saw (its argument classes), for review and `apparmor_parser`.
    ExportApparmor {
        name: String,
        /// Output file (default: standard output). Written atomically.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
}

/// Run one `profile` subcommand on the database at `db`.
pub(crate) fn run(db: &Path, cmd: ProfileCmd) -> Result<ExitCode> {
    match cmd {
        ProfileCmd::Train {
            name,
            format,
            n,
            runs,
            paths,
            detector,
            ae,
        } => {
            if detector.ngram() {
                train(db, &name, format, (n, runs), &paths)?;
            }
            if detector.autoencoder() {
                super::ae::train(db, &name, format, &paths, &ae)?;
            }
        }
        ProfileCmd::List => print_list(&Store::open(db)?.list()?),
        ProfileCmd::Show { name, json } => show(db, &name, json)?,
        ProfileCmd::Rm { name } => {
            let key = Store::open(db)?.remove(&name)?;
            println!("removed profile {key}");
        }
        ProfileCmd::Merge { dst, srcs } => merge(db, &dst, &srcs)?,
        ProfileCmd::Calibrate {
            name,
            format,
            paths,
            score,
            calibrate,
            detector,
        } => {
            if detector.ngram() {
                self::calibrate(db, &name, format, &paths, &score, &calibrate)?;
            }
            if detector.autoencoder() {
                super::ae::calibrate(db, &name, format, &paths, calibrate.method())?;
            }
        }
        ProfileCmd::Promote { name, to } => {
            let meta = Store::open(db)?.update_meta(&name, |m| m.pin_mode(to))?;
            println!("profile {}: mode {}", meta.name, meta.mode);
        }
        ProfileCmd::ExportSeccomp { name, output } => {
            let p = Store::open(db)?.load(&name)?;
            let json = export::seccomp_json(&p.meta, &p.counts.syscalls())?;
            write_out(output.as_deref(), &json)?;
        }
        #[cfg(feature = "registry")]
        ProfileCmd::Push {
            name,
            reference,
            image,
            any_image,
            transport,
        } => super::registry::push(db, &name, &reference, (image, any_image), &transport)?,
        #[cfg(feature = "registry")]
        ProfileCmd::Pull {
            reference,
            as_name,
            merge,
            replace,
            transport,
        } => {
            let how = match (merge, replace) {
                (true, _) => store::Import::Merge,
                (_, true) => store::Import::Replace,
                _ => store::Import::New,
            };
            super::registry::pull(db, &reference, as_name.as_deref(), how, &transport)?;
        }
        ProfileCmd::Bind { name, image } => super::bind::bind(db, &name, &image)?,
        ProfileCmd::Unbind { name } => super::bind::unbind(db, &name)?,
        ProfileCmd::ExportApparmor { name, output } => {
            let meta = Store::open(db)?.load(&name)?.meta;
            write_out(output.as_deref(), &apparmor::apparmor_profile(&meta)?)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A training setting: the one given, which must agree with the existing profile's (`Err`
/// with the profile's otherwise); else the profile's; else `default`.
fn setting<T: PartialEq + Copy>(given: Option<T>, stored: Option<T>, default: T) -> Result<T, T> {
    match (given, stored) {
        (Some(g), Some(s)) if g != s => Err(s),
        (g, s) => Ok(g.or(s).unwrap_or(default)),
    }
}

/// `profile train`: merge the n-gram counts of the traces into the profile `name` resolves to
/// (a key, or the one profile of that name, e.g. an image's), or a new one keyed by `name`.
fn train(
    db: &Path,
    name: &str,
    format: Format,
    (n, collapse): (Option<usize>, Option<Runs>),
    paths: &[PathBuf],
) -> Result<()> {
    let (key, existing) = match Store::open(db)?.meta(name) {
        Ok(m) => (m.key, Some((m.n, m.collapse_runs))),
        Err(StoreError::NotFound { .. }) => (name.to_owned(), None),
        Err(e) => return Err(e.into()),
    };
    let n = setting(n, existing.map(|e| e.0), score::DEFAULT_N).map_err(|e| {
        anyhow!(
            "profile {name} has n = {e}, not {}: train another profile or drop --n",
            n.unwrap_or(e)
        )
    })?;
    let collapse = setting(
        collapse.map(Runs::collapse),
        existing.map(|e| e.1),
        ngram_profiler::ngram::COLLAPSE_RUNS,
    )
    .map_err(|e| {
        let word = if e { "collapses" } else { "keeps" };
        anyhow::anyhow!(
            "profile {name} {word} runs of one call: train another profile or drop --runs"
        )
    })?;
    let (counts, runs) = count_traces(format, (n, collapse), paths)?;
    let store = Store::open(db)?;
    let meta = store.train(&key, name, &counts, runs, store::now_secs())?;
    println!(
        "profile {}: +{} runs, {} calls, {} distinct {}-grams, P0 {:.4}",
        meta.name, runs, meta.calls, meta.distinct, meta.n, meta.p0
    );
    Ok(())
}

/// `profile show`: learning progress, mode, threshold, smoothing and the calls seen.
fn show(db: &Path, name: &str, json: bool) -> Result<()> {
    let store = Store::open(db)?;
    let p = store.load(name)?;
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
        v["provenance"] = serde_json::to_value(p.meta.provenance())?;
        // The binding, by key or by `profile bind`/`pull` (`image` holds only the latter).
        v["bound_image"] = serde_json::json!(p.meta.bound_image());
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print_show(&p.meta, &syscalls, &fit);
    }
    Ok(())
}

/// `profile merge`: the counts of `srcs` into `dst`.
fn merge(db: &Path, dst: &str, srcs: &[String]) -> Result<()> {
    let meta = Store::open(db)?.merge(dst, srcs, store::now_secs())?;
    println!(
        "profile {}: {} runs, {} calls, {} distinct {}-grams, P0 {:.4}",
        meta.name, meta.runs, meta.calls, meta.distinct, meta.n, meta.p0
    );
    Ok(())
}

/// `profile calibrate`: score normal traces and store the threshold and scoring.
fn calibrate(
    db: &Path,
    name: &str,
    format: Format,
    paths: &[PathBuf],
    opts: &ScoreOpts,
    cal: &CalibrateOpts,
) -> Result<()> {
    let p = Store::open(db)?.load(name)?;
    let cfg = opts.apply(p.meta.score);
    let model = Model::new(&p.counts)?;
    let traces = read_traces(format, paths, "calibrating")?;
    let scores = traces
        .iter()
        .map(|t| score::score_trace(&model, cfg, t, None).map(|s| s.score))
        .collect::<Result<Vec<_>, _>>()?;
    let c = score::calibrate(&scores, cal.method())?;
    // The store is not held while scoring: others may train meanwhile.
    let meta = Store::open(db)?.update_meta(name, |m| {
        m.score = cfg;
        m.calibration = Some(c);
    })?;
    println!(
        "profile {}: threshold {:.6} from {} normal traces ({:.4} of them above it)",
        meta.name, c.threshold, c.normal, c.normal_alarm_rate
    );
    Ok(())
}

/// An export, to `output` (atomically) or standard output.
fn write_out(output: Option<&Path>, text: &str) -> Result<()> {
    match output {
        Some(path) => write_atomic(path, text.as_bytes())?,
        None => std::io::stdout().write_all(text.as_bytes())?,
    }
    Ok(())
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
    print_provenance(m);
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
    print_lifecycle(m, store::now_secs());
    match &m.autoencoder {
        Some(info) => {
            for line in super::ae::describe(info) {
                println!("{line}");
            }
        }
        None => println!("autoencoder  none (profile train --detector autoencoder)"),
    }
    print_args(m);
    println!("syscalls     {} {}", syscalls.len(), syscalls.join(" "));
}

/// Where the counts came from (hosts, runs, calls) and the image the profile is bound to.
fn print_provenance(m: &ProfileMeta) {
    let s = m.provenance();
    let mut line = format!(
        "{} hosts, {} runs, {} calls recorded",
        s.hosts, s.runs, s.calls
    );
    if s.unrecorded_runs > 0 || s.unrecorded_calls > 0 {
        line.push_str(&format!(
            "; {} runs, {} calls from before provenance was recorded",
            s.unrecorded_runs, s.unrecorded_calls
        ));
    }
    println!("provenance   {line}");
    for o in m.origins.values() {
        println!(
            "  {} ({}): {} runs, {} calls, {} .. {}",
            o.hostname,
            o.host,
            o.runs,
            o.calls,
            fmt_time(o.first),
            fmt_time(o.last)
        );
    }
    match m.bound_image() {
        Some(d) => println!("image        {d} (containers of another image are refused)"),
        None => println!("image        not bound (any container naming the profile uses it)"),
    }
}

/// The argument classes, for review (decision 38): per program and phase, the directories
/// with their accesses, the destinations, and the namespace, mount and privilege calls.
fn print_args(m: &ProfileMeta) {
    let Some(args) = &m.args else {
        println!("arguments    not learned");
        return;
    };
    println!("arguments    {} programs and phases", args.programs.len());
    for (program, p) in &args.programs {
        println!(
            "  {program}: {} observations, unseen mass {:.1e}",
            p.observations,
            p.p_new()
        );
        for (dir, c) in &p.dirs {
            let access: Vec<&str> = [(1, "read"), (2, "write"), (4, "exec"), (8, "create")]
                .iter()
                .filter(|(bit, _)| c.access & bit != 0)
                .map(|(_, name)| *name)
                .collect();
            let below: Vec<&str> = [(1, "read"), (2, "write"), (4, "exec"), (8, "create")]
                .iter()
                .filter(|(bit, _)| c.below_access() & bit != 0)
                .map(|(_, name)| *name)
                .collect();
            let below = if c.deep {
                format!(", below it {}", below.join(","))
            } else {
                String::new()
            };
            println!("    {dir} {}{below} ({})", access.join(","), c.count);
        }
        for (dest, n) in &p.dests {
            println!("    -> {dest} ({n})");
        }
        for (class, n) in &p.privileged {
            println!("    ! {class} ({n})");
        }
    }
}

/// The learning lifecycle (docs/decisions.md, decisions 26, 29, 30): state, progress toward
/// automatic promotion, the runs judged against the profile, the live thresholds, programs.
fn print_lifecycle(m: &ProfileMeta, now: u64) {
    use ngram_profiler::lifecycle::{self, Promotion};
    use ngram_profiler::live::{LIVE_SETTLED_THRESHOLD, LIVE_THRESHOLD};
    let rule = Promotion::default();
    let progress = rule.progress(m, now);
    let met = progress.iter().filter(|c| c.met).count();
    let state = match (m.pinned_mode(), m.promoted_at) {
        (Some(mode), Some(at)) => format!("{mode}, promoted automatically at {}", fmt_time(at)),
        (Some(mode), None) => format!("{mode}, set with profile promote"),
        (None, _) => format!(
            "learning: {met} of {} conditions of automatic promotion met (default --promote-* values)",
            progress.len()
        ),
    };
    println!("state        {state}");
    if m.pinned_mode().is_none() {
        for c in &progress {
            println!(
                "  [{}] {:<10} {}",
                if c.met { "x" } else { " " },
                c.name,
                c.detail
            );
        }
    }
    if !m.run_checks.is_empty() {
        let recent: Vec<String> = m
            .run_checks
            .iter()
            .rev()
            .take(5)
            .rev()
            .map(|c| match c.max_settled {
                Some(top) => format!("{} alarms (top {top:.1})", c.alarms),
                None => format!("{} alarms", c.alarms),
            })
            .collect();
        println!(
            "runs judged  {} (newest last: {})",
            m.run_checks.len(),
            recent.join(", ")
        );
    }
    if m.calibration.is_none() {
        let c = lifecycle::calibrated(m, LIVE_SETTLED_THRESHOLD, LIVE_THRESHOLD);
        let raised: Vec<String> = c
            .young
            .iter()
            .filter(|(_, &t)| t > c.young_default)
            .map(|(p, t)| format!("{p} {t:.2}"))
            .collect();
        let settled = if c.settled > 1.0 {
            "settled sequence rule off (the checked runs reached the top, or their excursions \
             do not thin out fast enough)"
                .to_owned()
        } else {
            format!("settled threshold {:.2}", c.settled)
        };
        println!(
            "live rule    {settled}, young threshold {:.2}{}",
            c.young_default,
            if raised.is_empty() {
                String::new()
            } else {
                format!(" (raised for {})", raised.join(", "))
            }
        );
    }
    match &m.programs {
        Some(p) => {
            let names: Vec<&str> = p.keys().map(String::as_str).take(12).collect();
            let more = p.len().saturating_sub(names.len());
            let more = if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            };
            println!("programs     {} {}{more}", p.len(), names.join(" "));
        }
        None => println!("programs     not learned (no program is judged new)"),
    }
    println!("noise        {}", m.noise_names().join(" "));
    println!(
        "runs         {}",
        if m.collapse_runs {
            "collapsed (a run of one call is one element of a thread's stream)"
        } else {
            "kept (a profile from before decision 47)"
        }
    );
}

pub(super) fn fmt_time(secs: u64) -> String {
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
