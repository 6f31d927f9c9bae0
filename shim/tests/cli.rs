//! The offline command line, run as a user would: train, list, show, calibrate, score, export,
//! merge, promote, rm, eval; concurrent trainers; bad input gives one-line errors.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ngram-ids"))
}

fn run(db: &Path, args: &[&str]) -> Output {
    bin().env("NGRAM_IDS_DB", db).args(args).output().unwrap()
}

fn ok(db: &Path, args: &[&str]) -> String {
    let out = run(db, args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn err(db: &Path, args: &[&str]) -> String {
    let out = run(db, args);
    assert!(!out.status.success(), "{args:?} should fail");
    String::from_utf8(out.stderr).unwrap()
}

/// Write ADFA-style traces (i386 numbers) built from `pattern` repeated, one file each.
fn traces(dir: &Path, name: &str, patterns: &[&[u16]], reps: usize) -> PathBuf {
    let d = dir.join(name);
    std::fs::create_dir_all(&d).unwrap();
    for (i, p) in patterns.iter().enumerate() {
        let mut s = String::new();
        for r in 0..reps {
            for (j, nr) in p.iter().enumerate() {
                // vary a little so traces are not identical
                let nr = if (r + j + i) % 17 == 0 { 4 } else { *nr };
                s.push_str(&format!("{nr} "));
            }
        }
        std::fs::write(d.join(format!("t{i:03}.txt")), s).unwrap();
    }
    d
}

const NORMAL: &[u16] = &[3, 4, 5, 6, 3, 4, 192, 91, 3, 4, 6];
const ATTACK: &[u16] = &[11, 102, 102, 11, 54, 26, 11, 102, 5, 5, 11];

#[test]
fn train_list_show_export_rm() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("db");
    let t = traces(tmp.path(), "train", &[NORMAL, NORMAL, NORMAL], 20);
    let ts = t.to_str().unwrap();
    let out = ok(
        &db,
        &[
            "profile", "train", "web", "--format", "adfa", "--n", "3", ts,
        ],
    );
    assert!(out.contains("+3 runs"), "{out}");
    let list = ok(&db, &["profile", "list"]);
    assert!(list.lines().nth(1).unwrap().starts_with("web "), "{list}");
    let show: Value =
        serde_json::from_str(&ok(&db, &["profile", "show", "web", "--json"])).unwrap();
    assert_eq!(show["runs"], 3);
    assert_eq!(show["n"], 3);
    assert_eq!(show["calls"], 3 * 20 * NORMAL.len());
    assert!(show["p0"].as_f64().unwrap() < 0.5);
    assert!(show["syscalls"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s == "mmap2"));

    // Training again without --n keeps the profile's n; a different --n is refused.
    ok(&db, &["profile", "train", "web", "--format", "adfa", ts]);
    let e = err(
        &db,
        &[
            "profile", "train", "web", "--format", "adfa", "--n", "4", ts,
        ],
    );
    assert!(e.contains("n = 3"), "{e}");

    let out_file = tmp.path().join("web.json");
    let of = out_file.to_str().unwrap();
    ok(&db, &["profile", "export-seccomp", "web", "-o", of]);
    let text = std::fs::read_to_string(&out_file).unwrap();
    let j: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(j["syscalls"][0]["names"][0], "close");
    assert_eq!(ok(&db, &["profile", "export-seccomp", "web"]), text);

    ok(&db, &["profile", "promote", "web", "--to", "enforce"]);
    assert!(ok(&db, &["profile", "show", "web"]).contains("mode         enforce"));
    // The same training twice would count its calls twice (every count even, P0 = N1/N = 0):
    // refused (decision 96). The same traces trained again are another training.
    let e = err(&db, &["profile", "merge", "both", "web", "web"]);
    assert!(e.contains("twice"), "{e}");
    ok(
        &db,
        &[
            "profile", "train", "web2", "--format", "adfa", "--n", "3", ts,
        ],
    );
    ok(&db, &["profile", "merge", "both", "web", "web2"]);
    let both: Value =
        serde_json::from_str(&ok(&db, &["profile", "show", "both", "--json"])).unwrap();
    assert_eq!(both["runs"], 6 + 3);
    assert_eq!(both["provenance"]["hosts"], 1);
    assert_eq!(both["provenance"]["origins"], 2);
    ok(&db, &["profile", "rm", "web"]);
    let e = err(&db, &["profile", "show", "web"]);
    assert!(e.contains("no profile named \"web\""), "{e}");
    assert_eq!(e.trim_end().lines().count(), 1, "{e}");
}

#[test]
fn calibrate_then_score_flags_attacks() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("db");
    let t = traces(tmp.path(), "train", &[NORMAL; 6], 30);
    let normal = traces(tmp.path(), "normal", &[NORMAL; 4], 25);
    let attack = traces(tmp.path(), "attack", &[ATTACK], 10);
    let (t, normal, attack) = (
        t.to_str().unwrap(),
        normal.to_str().unwrap(),
        attack.to_str().unwrap(),
    );
    ok(
        &db,
        &["profile", "train", "web", "--format", "adfa", "--n", "3", t],
    );
    // Uncalibrated: scores, says so, no anomaly verdict.
    let out = run(&db, &["score", "web", "--format", "adfa", attack]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not calibrated"));
    let cal = ok(
        &db,
        &[
            "profile",
            "calibrate",
            "web",
            "--format",
            "adfa",
            "--max-normal",
            normal,
        ],
    );
    assert!(cal.contains("from 4 normal traces"), "{cal}");
    let out = run(
        &db,
        &["score", "web", "--format", "adfa", "--json", attack, normal],
    );
    assert_eq!(out.status.code(), Some(3), "anomalies exit with status 3");
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 5);
    assert_eq!(lines[0]["anomalous"], true);
    assert!(lines[0]["explanation"]
        .as_str()
        .unwrap()
        .contains("socketcall"));
    assert!(lines[1..].iter().all(|l| l["anomalous"] == false));
    let out = run(&db, &["score", "web", "--format", "adfa", normal]);
    assert_eq!(out.status.code(), Some(0));
}

/// The autoencoder stored with the profile (issue 11): trained, shown, calibrated on held-out
/// normal traces, scoring; a profile without one and damaged weights are one-line errors.
#[test]
fn the_autoencoder_is_stored_with_the_profile_calibrated_and_scores() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("db");
    let t = traces(tmp.path(), "train", &[NORMAL; 6], 30);
    let normal = traces(tmp.path(), "normal", &[NORMAL; 4], 25);
    let attack = traces(tmp.path(), "attack", &[ATTACK], 10);
    let (t, normal, attack) = (
        t.to_str().unwrap(),
        normal.to_str().unwrap(),
        attack.to_str().unwrap(),
    );
    let small = ["--ae-window", "4", "--ae-hidden", "16", "--ae-epochs", "20"];
    // The autoencoder of a profile that does not exist yet.
    let e = err(
        &db,
        &[
            &[
                "profile",
                "train",
                "web",
                "--format",
                "adfa",
                "--detector",
                "autoencoder",
                t,
            ][..],
            &small,
        ]
        .concat(),
    );
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(e.contains("--detector both"), "{e}");
    let out = ok(
        &db,
        &[
            &[
                "profile",
                "train",
                "web",
                "--format",
                "adfa",
                "--n",
                "3",
                "--detector",
                "both",
                t,
            ][..],
            &small,
        ]
        .concat(),
    );
    assert!(out.contains("autoencoder trained on 6 traces"), "{out}");
    let show = ok(&db, &["profile", "show", "web"]);
    assert!(
        show.contains("autoencoder  sequence input, window 4 calls")
            && show.contains("threshold  not calibrated"),
        "{show}"
    );
    let json: Value =
        serde_json::from_str(&ok(&db, &["profile", "show", "web", "--json"])).unwrap();
    let ae = &json["autoencoder"];
    assert_eq!(ae["format"], 1);
    assert_eq!(ae["trained"]["traces"], 6);
    assert!(ae["parameters"].as_u64().unwrap() > 0);
    assert!(ae["bytes"].as_u64().unwrap() > 4 * ae["parameters"].as_u64().unwrap());
    // Calibrated on held-out normal traces, then scoring: the attack alarms, normal does not.
    let cal = ok(
        &db,
        &[
            "profile",
            "calibrate",
            "web",
            "--format",
            "adfa",
            "--detector",
            "autoencoder",
            "--max-normal",
            normal,
        ],
    );
    assert!(
        cal.contains("autoencoder threshold") && cal.contains("from 4 normal traces"),
        "{cal}"
    );
    let json: Value =
        serde_json::from_str(&ok(&db, &["profile", "show", "web", "--json"])).unwrap();
    assert!(json["autoencoder"]["calibration"]["threshold"]
        .as_f64()
        .is_some());
    assert!(
        json["calibration"].is_null(),
        "the n-gram threshold is untouched"
    );
    let out = run(
        &db,
        &[
            "score",
            "web",
            "--format",
            "adfa",
            "--detector",
            "autoencoder",
            "--json",
            attack,
            normal,
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 5);
    assert!(lines.iter().all(|l| l["detector"] == "autoencoder"));
    assert_eq!(lines[0]["anomalous"], true, "{}", lines[0]);
    assert!(lines[1..].iter().all(|l| l["anomalous"] == false));
    // Re-training the n-grams keeps the autoencoder; rm removes it with the profile.
    ok(
        &db,
        &["profile", "train", "web", "--format", "adfa", normal],
    );
    assert!(ok(&db, &["profile", "show", "web"]).contains("autoencoder  sequence"));
    // Damaged weights: one line naming the profile and what to do.
    {
        let sled_db = sled::open(db.join("sled")).unwrap();
        let models = sled_db.open_tree("models").unwrap();
        let mut w = models.get("web").unwrap().unwrap().to_vec();
        w[4..8].copy_from_slice(&9u32.to_le_bytes());
        models.insert("web", w).unwrap();
        sled_db.flush().unwrap();
    }
    let e = err(
        &db,
        &[
            "score",
            "web",
            "--format",
            "adfa",
            "--detector",
            "autoencoder",
            normal,
        ],
    );
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(
        e.contains("profile web")
            && e.contains("format 9")
            && e.contains("reads format 1")
            && e.contains("--detector autoencoder"),
        "{e}"
    );
    ok(&db, &["profile", "rm", "web"]);
    ok(
        &db,
        &["profile", "train", "web", "--format", "adfa", normal],
    );
    let e = err(
        &db,
        &[
            "score",
            "web",
            "--format",
            "adfa",
            "--detector",
            "autoencoder",
            normal,
        ],
    );
    assert!(
        e.contains("has no autoencoder") && e.contains("profile train web"),
        "{e}"
    );
}

#[test]
fn eval_json_has_the_fixed_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("db");
    let t = traces(tmp.path(), "train", &[NORMAL; 4], 30);
    let normal = traces(tmp.path(), "normal", &[NORMAL; 6], 20);
    let attack = traces(tmp.path(), "attack", &[ATTACK, ATTACK], 10);
    let mut args = vec![
        "eval",
        "--format",
        "adfa",
        "--n",
        "3",
        "--train",
        t.to_str().unwrap(),
        "--normal",
        normal.to_str().unwrap(),
        "--attack",
        attack.to_str().unwrap(),
    ];
    let text = ok(&db, &args);
    args.push("--json");
    let out = ok(&db, &args);
    let v: Value = serde_json::from_str(&out).unwrap();
    for k in [
        "auc",
        "detection_rate",
        "false_alarm_rate",
        "threshold",
        "n",
    ] {
        assert!(v.get(k).is_some(), "missing {k} in {out}");
    }
    assert_eq!(v["n"], 3);
    assert_eq!(v["auc"], 1.0);
    assert_eq!(v["detection_rate"], 1.0);
    let attacks = v["attacks"].as_array().unwrap();
    assert_eq!(attacks.len(), 2, "{out}");
    assert!(attacks.iter().all(|a| a["first_alarm"].is_u64()), "{out}");

    // The text report names each attack trace and the call of its first alarm.
    for a in attacks {
        let line = format!(
            "{}: call {} of {}",
            a["source"].as_str().unwrap(),
            a["first_alarm"],
            a["calls"]
        );
        assert!(text.contains(&line), "no {line:?} in {text}");
    }
}

#[test]
fn eval_callset_and_the_cross_validated_sum() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("db");
    let t = traces(tmp.path(), "train", &[NORMAL; 4], 30);
    let normal = traces(tmp.path(), "normal", &[NORMAL; 6], 20);
    // Two attack families, as ADFA-LD lays them out: FAMILY_N directories.
    let attack = tmp.path().join("attack");
    traces(&attack, "Fam_1", &[ATTACK, ATTACK], 10);
    traces(&attack, "Other_1", &[ATTACK], 12);
    let out = ok(
        &db,
        &[
            "eval",
            "--format",
            "adfa",
            "--n",
            "3",
            "--train",
            t.to_str().unwrap(),
            "--normal",
            normal.to_str().unwrap(),
            "--attack",
            attack.to_str().unwrap(),
            "--callset",
            "--select",
            "--json",
        ],
    );
    let v: Value = serde_json::from_str(&out).unwrap();
    let names: Vec<&str> = v["detectors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["detector"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["ngram", "stide", "callset", "ngram+callset"],
        "{out}"
    );
    let callset = &v["detectors"][2];
    // The attack traces share only call 5 with the training traces' sets (and 4, the
    // variation), so their sets are far from every training set.
    assert_eq!(callset["auc"], 1.0, "{out}");
    assert_eq!(callset["detected"], 3, "{out}");
    // A whole-trace verdict: the alarm is at the trace's last call.
    let a = &callset["attacks"][0];
    assert_eq!(
        a["first_alarm"].as_u64(),
        a["calls"].as_u64().map(|c| c - 1),
        "{out}"
    );
    // ADFA-style traces have no timestamps: no time to detect in seconds.
    assert!(callset["mean_seconds_to_detect"].is_null(), "{out}");
    assert!(callset["mean_time_to_detect"].is_f64(), "{out}");
    let folds = v["selection"]["folds"].as_array().unwrap();
    let held: Vec<&str> = folds
        .iter()
        .map(|f| f["held_out"].as_str().unwrap())
        .collect();
    assert_eq!(held, ["Fam", "Other"], "{out}");
    assert_eq!(folds[0]["attacks"], 2);
    assert_eq!(folds[1]["attacks"], 1);
    assert!(folds
        .iter()
        .all(|f| !f["chosen"].as_array().unwrap().is_empty()));
}

#[test]
fn concurrent_training_processes_lose_no_counts() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("db");
    let t = traces(tmp.path(), "train", &[NORMAL, NORMAL], 50);
    let children: Vec<_> = (0..6)
        .map(|_| {
            bin()
                .env("NGRAM_IDS_DB", &db)
                .args(["profile", "train", "img", "--format", "adfa", "--n", "4"])
                .arg(&t)
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let v: Value = serde_json::from_str(&ok(&db, &["profile", "show", "img", "--json"])).unwrap();
    assert_eq!(v["runs"], 12);
    assert_eq!(v["calls"], 6 * 2 * 50 * NORMAL.len());
}

#[test]
fn bad_input_gives_one_line_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("db");
    let bad = tmp.path().join("bad.txt");
    std::fs::write(&bad, "3 4 5\n6 open 7\n").unwrap();
    let b = bad.to_str().unwrap();
    let e = err(&db, &["profile", "train", "x", "--format", "adfa", b]);
    assert!(e.contains(&format!("{b}:2:")), "{e}");
    assert_eq!(e.trim_end().lines().count(), 1, "{e}");

    let e = err(&db, &["profile", "train", "x", "--format", "nope", b]);
    assert!(e.contains("nope"), "{e}");

    let e = err(
        &db,
        &[
            "profile",
            "train",
            "x",
            "--format",
            "adfa",
            "/nonexistent/traces",
        ],
    );
    assert!(e.contains("/nonexistent/traces"), "{e}");
    assert_eq!(e.trim_end().lines().count(), 1, "{e}");
    assert_eq!(
        e.matches("No such file").count(),
        1,
        "a cause said twice: {e}"
    );

    // A database directory that is not ours.
    let foreign = tmp.path().join("foreign");
    {
        let other = sled::open(foreign.join("sled")).unwrap();
        other.insert(b"k", b"v").unwrap();
        other.flush().unwrap();
    }
    let e = err(&foreign, &["profile", "list"]);
    assert!(e.contains("not an ngram-ids database"), "{e}");
    assert_eq!(e.trim_end().lines().count(), 1, "{e}");

    // `--db` pointed at a directory of other files by mistake: refused, and nothing written.
    let etc = tmp.path().join("etc");
    std::fs::create_dir(&etc).unwrap();
    std::fs::write(etc.join("hosts"), "127.0.0.1 localhost\n").unwrap();
    let e = err(&etc, &["profile", "list"]);
    assert!(e.contains("not an ngram-ids database"), "{e}");
    assert_eq!(
        std::fs::read_dir(&etc).unwrap().count(),
        1,
        "wrote into {etc:?}"
    );
}

#[test]
fn alerts_prints_filters_and_follows() {
    use ngram_profiler::alert::{Alert, AlertLog};
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("alerts.jsonl");
    let mk = |id: &str, name: &str, call: &str| Alert {
        image: "ngram-nginx".to_owned(),
        exe: "/usr/sbin/nginx".to_owned(),
        ngram: vec!["read".to_owned(), call.to_owned()],
        ..sample_alert(id, name, 10, 11)
    };
    let mut log = AlertLog::open(&path).unwrap();
    log.write(&mk("aaaaaaaaaaaaaaaa", "web", "execve")).unwrap();
    log.write(&mk("bbbbbbbbbbbbbbbb", "db", "ptrace")).unwrap();
    let p = path.to_str().unwrap();
    let all = ok(tmp.path(), &["alerts", "--file", p]);
    assert_eq!(all.lines().count(), 2, "{all}");
    assert!(all.contains("[read execve]") && all.contains("[read ptrace]"));
    let one = ok(tmp.path(), &["alerts", "--file", p, "--container", "bbbb"]);
    assert_eq!(one.lines().count(), 1);
    assert!(one.contains("container db"));
    let json = ok(
        tmp.path(),
        &["alerts", "--file", p, "--json", "--container", "web"],
    );
    let v: Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(v["rule"], ngram_profiler::alert::RULE);

    // --follow prints lines written after it started.
    let mut child = bin()
        .args(["alerts", "--follow", "--file", p, "--container", "late"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    log.write(&mk("cccccccccccccccc", "late", "mount")).unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        line.contains("container late") && line.contains("[read mount]"),
        "{line}"
    );
}

#[test]
fn alerts_explains_a_supervisor_that_died() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("alerts.jsonl");
    // As the guard writes it (the line of the first release, byte for byte).
    let line = r#"{"output":"2026-11-23T13:54:56.123456789Z supervisor (pid 77) of container 0123456789ab died while the container ran: container stopped (fail closed)","priority":"Critical","rule":"ngram-ids supervisor died","time":"2026-11-23T13:54:56.123456789Z","source":"ngram-ids","tags":["ngram-ids","supervisor"],"hostname":"h","output_fields":{"container.id":"0123456789abcdef0123456789abcdef","container.name":"web","ngram.action":"stopped","proc.pid":77}}"#;
    std::fs::write(&path, format!("{line}\n")).unwrap();
    let p = path.to_str().unwrap();
    let text = ok(tmp.path(), &["alerts", "--file", p, "--container", "web"]);
    assert_eq!(
        text,
        "2026-11-23T13:54:56.123456789Z supervisor (pid 77) of container 0123456789ab died \
         while the container ran: container stopped (fail closed)\n"
    );
    let json = ok(
        tmp.path(),
        &["alerts", "--file", p, "--json", "--container", "0123"],
    );
    assert_eq!(json.trim_end(), line);
    assert_eq!(
        ok(tmp.path(), &["alerts", "--file", p, "--container", "db"]),
        ""
    );
}

#[test]
fn a_closed_pipe_ends_the_command_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("db");
    ok(&db, &["profile", "list"]);
    // `ngram-ids profile list | head -0`: the reader is gone before the first line.
    let mut child = bin()
        .env("NGRAM_IDS_DB", &db)
        .args(["profile", "list"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.signal(),
        Some(13), // SIGPIPE
        "{:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn train_adds_to_the_profile_a_name_resolves_to() {
    use ngram_profiler::ngram::NgramCounts;
    use ngram_profiler::store::Store;
    use ngram_profiler::syscalls::Arch;
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("db");
    // A profile keyed by an image ID and named after the image, as the supervisor makes them.
    {
        let store = Store::open(&db).unwrap();
        let c = NgramCounts::new(6, Arch::I386).unwrap();
        store.train("sha256:0123", "web", &c, 1, 1).unwrap();
    }
    let t = traces(tmp.path(), "train", &[NORMAL; 2], 10);
    ok(
        &db,
        &[
            "profile",
            "train",
            "web",
            "--format",
            "adfa",
            t.to_str().unwrap(),
        ],
    );
    let show: Value =
        serde_json::from_str(&ok(&db, &["profile", "show", "web", "--json"])).unwrap();
    assert_eq!(show["key"], "sha256:0123", "{show}");
    assert_eq!(show["runs"], 3, "{show}");
    assert_eq!(
        ok(&db, &["profile", "list"]).lines().count(),
        2,
        "one profile"
    );
}

mod command_line {
    //! The runtime's flags parse where dockerd and containerd put them (before the subcommand),
    //! and the help of each offline subcommand shows only its own options.

    use clap::{CommandFactory, Parser};
    use ngram_ids::cli::{Cli, Command};

    fn parse(line: &str) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("ngram-ids").chain(line.split_whitespace()))
    }

    #[test]
    fn every_recorded_dockerd_line_is_a_runtime_command() {
        let text = include_str!("../../runtime/tests/data/dockerd-argv.txt");
        for l in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let c = parse(l).unwrap_or_else(|e| panic!("{l}: {e}"));
            assert!(matches!(c.cmd, Command::Runtime(_)), "{l}");
            assert!(c.global.root.is_some() && c.global.log.is_some(), "{l}");
        }
    }

    #[test]
    fn daemon_json_runtime_args_come_first() {
        let c =
            parse("--mode=train --store /s --root /r --log /l --log-format json start x").unwrap();
        assert_eq!(c.global.mode, Some(ngram_runtime::cli::Mode::Train));
        assert_eq!(c.global.store, std::path::Path::new("/s"));
        assert!(matches!(c.cmd, Command::Runtime(_)));
    }

    #[test]
    fn offline_help_shows_only_its_own_options() {
        let mut cli = Cli::command();
        let top = cli.render_long_help().to_string();
        for flag in ["--root", "--log-format", "--mode", "--store", "--tracer"] {
            assert!(top.contains(flag), "{flag} not in the top-level help");
        }
        let runtime_flags = [
            "--root",
            "--log ",
            "--log-format",
            "--systemd-cgroup",
            "--debug",
            "--mode",
            "--enforce-action",
            "--unprofiled",
            "--exec-policy",
            "--breaker",
            "--store",
            "--alerts",
            "--record",
            "--promote",
            "--tracer",
        ];
        let paths: &[&[&str]] = &[
            &["eval"],
            &["score"],
            &["alerts"],
            &["profile"],
            &["profile", "train"],
            &["profile", "list"],
            &["profile", "show"],
            &["profile", "rm"],
            &["profile", "merge"],
            &["profile", "calibrate"],
            &["profile", "promote"],
            &["profile", "export-seccomp"],
        ];
        for path in paths {
            let mut cmd = &mut cli;
            for name in *path {
                cmd = cmd.find_subcommand_mut(name).unwrap();
            }
            let help = cmd.render_long_help().to_string();
            for flag in runtime_flags {
                assert!(
                    !help.contains(flag),
                    "{flag} in the help of {path:?}:\n{help}"
                );
            }
        }
    }

    #[test]
    fn scoring_is_one_of_its_values() {
        let ok = parse("eval --format adfa --train t --normal n --attack a --scoring rare");
        assert!(ok.is_ok());
        let e = parse("eval --format adfa --train t --normal n --attack a --scoring mean")
            .unwrap_err()
            .to_string();
        assert!(e.contains("nll, stide, rare"), "{e}");
    }
}

/// A damaged line in the alert log is named on stderr and skipped; the alerts around it print.
#[test]
fn alerts_skips_a_damaged_line_and_says_so() {
    use ngram_profiler::alert::AlertLog;
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("alerts.jsonl");
    let mk = |id: &str| sample_alert(id, id, 10, 11);
    let mut log = AlertLog::open(&path).unwrap();
    log.write(&mk("aaaa")).unwrap();
    drop(log);
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        writeln!(f, "{{\"output\": \"half a line").unwrap();
    }
    let mut log = AlertLog::open(&path).unwrap();
    log.write(&mk("bbbb")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ngram-ids"))
        .args(["alerts", "--file"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("container aaaa") && stdout.contains("container bbbb"),
        "{stdout}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(":2:") && stderr.contains("skipped"),
        "{stderr}"
    );
}

/// `ngram-ids alerts` reads the rotated files first, oldest first, then the live one.
#[test]
fn alerts_reads_rotated_files_in_order() {
    use ngram_profiler::alert::{AlertLog, Rotation};
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("alerts.jsonl");
    let mk = |pid: u32| sample_alert("cccccccccccccccc", "c", pid, pid);
    // Every line rotates: FILE.3 = [1], FILE.2 = [2], FILE.1 = [3], FILE = [] then [4].
    let mut log = AlertLog::open_with(
        &path,
        Rotation {
            max_bytes: 1,
            keep: 3,
        },
    )
    .unwrap();
    for pid in 1..=3 {
        log.write(&mk(pid)).unwrap();
    }
    drop(log);
    let mut last = AlertLog::open_with(&path, Rotation::default()).unwrap();
    last.write(&mk(4)).unwrap();
    let out = ok(tmp.path(), &["alerts", "--file", path.to_str().unwrap()]);
    let pids: Vec<&str> = out
        .lines()
        .map(|l| l.split(" pid ").nth(1).unwrap().split(' ').next().unwrap())
        .collect();
    assert_eq!(pids, ["1", "2", "3", "4"], "{out}");
}

/// An alert of container `id` (named `name`) by `pid`/`tid`, for the alert log tests.
fn sample_alert(id: &str, name: &str, pid: u32, tid: u32) -> ngram_profiler::alert::Alert {
    use ngram_profiler::alert::{Action, Alert, Rule};
    Alert {
        time_ns: 1_795_442_096_000_000_000,
        latency_ns: 1000,
        container_id: id.to_owned(),
        container_name: name.to_owned(),
        image: "img".to_owned(),
        profile: "p".to_owned(),
        pid,
        tid,
        exe: "/bin/x".to_owned(),
        ngram: vec!["read".to_owned()],
        probability: 1e-6,
        seen: false,
        window_score: 5.0,
        threshold: 2.0,
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

/// `profile bind` and `unbind`: a digest given directly (Docker names are resolved by the e2e
/// suite), shown by `profile show`; a profile keyed by an image stays that image's; bad input
/// is one line.
#[test]
fn bind_and_unbind_a_profile_by_digest() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("db");
    let t = traces(tmp.path(), "train", &[NORMAL, NORMAL], 10);
    let ts = t.to_str().unwrap();
    let (a, b) = (
        format!("sha256:{}", "a1".repeat(32)),
        format!("sha256:{}", "b2".repeat(32)),
    );
    ok(&db, &["profile", "train", "web", "--format", "adfa", ts]);
    let shown = |name: &str| -> Value {
        serde_json::from_str(&ok(&db, &["profile", "show", name, "--json"])).unwrap()
    };
    assert_eq!(shown("web")["bound_image"], Value::Null);
    let out = ok(&db, &["profile", "bind", "web", &a]);
    assert!(out.contains(&format!("bound to image {a}")), "{out}");
    assert_eq!(shown("web")["bound_image"], a.as_str());
    assert_eq!(shown("web")["image"], a.as_str());
    let text = ok(&db, &["profile", "show", "web"]);
    assert!(
        text.contains(&format!(
            "image        {a} (containers of another image are refused)"
        )),
        "{text}"
    );
    // Rebinding says what it was bound to.
    let out = ok(&db, &["profile", "bind", "web", &b]);
    assert!(out.contains(&format!("it was bound to {a}")), "{out}");
    assert_eq!(shown("web")["bound_image"], b.as_str());
    let out = ok(&db, &["profile", "unbind", "web"]);
    assert!(
        out.contains(&format!("bound to no image (it was bound to {b})")),
        "{out}"
    );
    assert_eq!(shown("web")["bound_image"], Value::Null);
    assert!(ok(&db, &["profile", "show", "web"]).contains("image        not bound"));

    // A profile keyed by an image ID is bound by its key.
    ok(&db, &["profile", "train", &a, "--format", "adfa", ts]);
    assert_eq!(shown(&a)["bound_image"], a.as_str());
    ok(&db, &["profile", "bind", &a, &a]);
    for args in [
        vec!["bind", a.as_str(), b.as_str()],
        vec!["unbind", a.as_str()],
    ] {
        let mut all = vec!["profile"];
        all.extend(args);
        let e = err(&db, &all);
        assert_eq!(e.trim_end().lines().count(), 1, "one line: {e}");
        assert!(e.contains(&format!("keyed by image {a}")), "{e}");
    }
    assert_eq!(shown(&a)["bound_image"], a.as_str());

    // Bad input: one line each, nothing changed.
    for (args, want) in [
        (vec!["bind", "web", "sha256:abc"], "not a digest"),
        (vec!["bind", "web", "a b"], "neither an image digest"),
        (vec!["bind", "nope", &b], "nope"),
        (vec!["unbind", "nope"], "nope"),
    ] {
        let mut all = vec!["profile"];
        all.extend(args.iter().copied());
        let e = err(&db, &all);
        assert!(e.contains(want), "{args:?}: {e}");
    }
    assert_eq!(shown("web")["bound_image"], Value::Null);
}
