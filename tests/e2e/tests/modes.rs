//! The second registration of the runtime, `ngram-ids-train` (`runtimeArgs: ["--mode=train"]`,
//! written by scripts/register.sh), runs containers like the plain one. ngram-ids only.

use std::time::Duration;

use ngram_e2e::{setup, BUSYBOX, LABEL};

#[test]
fn train_runtime_runs_containers() {
    let Some(e) = setup("train_runtime_runs_containers") else {
        return;
    };
    if e.runtime() == "runc" {
        println!("skipping train_runtime_runs_containers: runc has no training mode");
        return;
    }
    let train = format!("{}-train", e.runtime().trim_end_matches("-train"));
    let runtimes = e.docker(&["info", "--format", "{{json .Runtimes}}"]);
    assert!(
        runtimes.success().stdout.contains(&format!("\"{train}\"")),
        "dockerd has no {train} runtime (scripts/register.sh registers it): {runtimes}"
    );
    let c = e.container();
    let out = e.docker(&[
        "run",
        "--runtime",
        &train,
        "--name",
        &c.name,
        "--label",
        LABEL,
        "--rm",
        BUSYBOX,
        "echo",
        "hello",
    ]);
    out.success();
    assert_eq!(out.stdout, "hello\n", "{out}");
    assert_eq!(out.stderr, "", "{out}");

    let c = e.container();
    let out = e.docker(&[
        "run",
        "--runtime",
        &train,
        "--name",
        &c.name,
        "--label",
        LABEL,
        "-d",
        BUSYBOX,
        "sh",
        "-c",
        "echo up; sleep 600",
    ]);
    out.success();
    e.wait_for_log(&c, "up", Duration::from_secs(30));
    e.docker(&["exec", &c.name, "true"]).success();
}
