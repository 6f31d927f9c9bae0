//! Argument classes end to end (issue 16): attacks that run through the program's own code
//! paths, which call order alone cannot see. A shell loop is trained reading files from one
//! directory and writing to `/dev/null`; the same loop then reads a secret from another
//! directory and writes a file (mimicry). Alert mode reports both with the argument explained;
//! enforce mode lets no secret out and creates no file.
//! Skipped unless the runtime under test is an ngram-ids registration.

use std::time::Duration;

use ngram_e2e::ids::{now_ns, setup_ids, wait_for_alerts, Profile, ALERT, ENFORCE, TRAIN};
use ngram_e2e::{E2e, TempDir, BUSYBOX};

/// How long a training merge may take to appear.
const MERGE_TIMEOUT: Duration = Duration::from_secs(60);

const SECRET: &str = "ARGSECRET-77";

/// The trained loop: read a data file, write a line to /dev/null.
fn trained_loop(iterations: u32) -> String {
    format!(
        "i=0; while [ $i -lt {iterations} ]; do cat /d/data/a.txt >/dev/null; \
         echo tick >/dev/null; i=$((i+1)); done"
    )
}

fn run(e: &E2e, runtime: &str, dir: &TempDir, label: &str, script: &str) -> ngram_e2e::Output {
    let c = e.container();
    let mount = format!("{}:/d", dir.path().display());
    e.run_with(
        runtime,
        &c,
        &[
            "--rm", "--label", label, "-v", &mount, BUSYBOX, "sh", "-c", script,
        ],
    )
}

#[test]
fn mimicry_through_the_programs_own_calls_is_caught_by_its_arguments() {
    let Some(e) = setup_ids("mimicry_through_the_programs_own_calls_is_caught_by_its_arguments")
    else {
        return;
    };
    let dir = TempDir::new("arguments");
    for sub in ["data", "secret", "out"] {
        std::fs::create_dir_all(dir.path().join(sub)).expect("fixture directory");
    }
    std::fs::write(dir.path().join("data/a.txt"), "data\n").expect("fixture data");
    std::fs::write(dir.path().join("secret/key"), format!("{SECRET}\n")).expect("fixture key");
    let profile = Profile::new("args");
    for run_no in 1..=2 {
        run(&e, TRAIN, &dir, &profile.label, &trained_loop(1500)).success();
        profile.wait_for_runs(run_no, MERGE_TIMEOUT);
    }
    let shown = ngram_e2e::ids::ngram_ids(&["profile", "show", &profile.name]);
    assert!(
        shown.stdout.contains("/d/data read"),
        "profile show does not list the learned directory: {shown}"
    );
    // The same loop, then the same two commands pointed elsewhere.
    let attack = format!(
        "{}; cat /d/secret/key; echo pwned >/d/out/f; echo end",
        trained_loop(50)
    );
    let mut problems = Vec::new();
    for runtime in [ALERT, ENFORCE] {
        let _ = std::fs::remove_file(dir.path().join("out/f"));
        let t0 = now_ns();
        let c = e.container();
        let mount = format!("{}:/d", dir.path().display());
        let out = e.run_with(
            runtime,
            &c,
            &[
                "--label",
                &profile.label,
                "-v",
                &mount,
                BUSYBOX,
                "sh",
                "-c",
                &attack,
            ],
        );
        let id = e.container_id(&c);
        let found = wait_for_alerts(&id, t0, Duration::from_secs(10));
        let args: Vec<_> = found.iter().filter(|a| a.rule == "argument").collect();
        let explained = |path: &str| {
            args.iter().any(|a| {
                a.json["output_fields"]["fd.name"] == path
                    && a.json["output_fields"]["ngram.argument"]
                        .as_str()
                        .is_some_and(|w| w.contains("never"))
            })
        };
        let (leaked, created) = (
            out.stdout.contains(SECRET),
            dir.path().join("out/f").exists(),
        );
        println!(
            "{runtime}: {} argument alerts; secret out {leaked}, file created {created}",
            args.len()
        );
        for a in &args {
            println!("  {}", a.json["output"]);
        }
        if !explained("/d/secret/key") {
            problems.push(format!(
                "{runtime}: the read of /d/secret/key is not reported"
            ));
        }
        if !explained("/d/out/f") {
            problems.push(format!("{runtime}: the write of /d/out/f is not reported"));
        }
        if runtime == ALERT && !(leaked && created) {
            problems.push(format!(
                "alert mode stopped the attack (it must only report): {out}"
            ));
        }
        if runtime == ENFORCE && (leaked || created) {
            problems.push(format!(
                "enforce let it happen: secret out {leaked}, file created {created}: {out}"
            ));
        }
        let _ = e.docker(&["rm", "-f", &c.name]);
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
