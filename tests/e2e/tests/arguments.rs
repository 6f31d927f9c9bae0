//! Argument classes end to end (issue 16): attacks that run through the program's own code
//! paths, which call order alone cannot see. A shell loop is trained reading files from one
//! directory and writing to `/dev/null`; the same loop then reads a secret from another
//! directory and writes a file (mimicry). Alert mode reports both with the argument explained;
//! enforce mode lets no secret out and creates no file.
//! Skipped unless the runtime under test is an ngram-ids registration.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use ngram_e2e::ids::{
    alerts_since, now_ns, setup_ids, wait_for_alerts, Profile, ALERT, ENFORCE, TRAIN,
};
use ngram_e2e::{run_cmd, E2e, TempDir, BUSYBOX};

/// How long a training merge may take to appear.
const MERGE_TIMEOUT: Duration = Duration::from_secs(60);

const SECRET: &str = "ARGSECRET-77";

/// The trained loop: read a data file, write a line to /dev/null.
fn trained_loop(iterations: u32) -> String {
    loop_reading("/d/data/a.txt", iterations)
}

/// A shell loop that reads `file` with `cat` and writes a line to /dev/null, `iterations`
/// times.
fn loop_reading(file: &str, iterations: u32) -> String {
    format!(
        "i=0; while [ $i -lt {iterations} ]; do cat {file} >/dev/null; \
         echo tick >/dev/null; i=$((i+1)); done"
    )
}

fn run(e: &E2e, runtime: &str, dir: &TempDir, label: &str, script: &str) -> ngram_e2e::Output {
    let c = e.container();
    let mount = mount_of(dir);
    let mut args = vec!["--rm"];
    args.extend(busybox_args(label, &mount, script));
    e.run_with(runtime, &c, &args)
}

/// Run `script` in a new busybox container under `runtime` (the test's directory at `/d`) and
/// collect its alerts: the container (to remove), its output and the alerts.
fn run_attack(
    e: &E2e,
    runtime: &str,
    dir: &TempDir,
    label: &str,
    script: &str,
) -> (
    ngram_e2e::Container,
    ngram_e2e::Output,
    Vec<ngram_e2e::ids::Alert>,
) {
    let t0 = now_ns();
    let c = e.container();
    let mount = mount_of(dir);
    let out = e.run_with(runtime, &c, &busybox_args(label, &mount, script));
    let id = e.container_id(&c);
    let found = wait_for_alerts(&id, t0, Duration::from_secs(10));
    (c, out, found)
}

/// `DIR:/d`: the test's directory inside the container.
fn mount_of(dir: &TempDir) -> String {
    format!("{}:/d", dir.path().display())
}

/// `docker run` arguments after the runtime: the profile label, the test's directory at `/d`,
/// and busybox's shell running `script`.
fn busybox_args<'a>(label: &'a str, mount: &'a str, script: &'a str) -> [&'a str; 8] {
    ["--label", label, "-v", mount, BUSYBOX, "sh", "-c", script]
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
    // The classes as an AppArmor profile that AppArmor's own parser accepts (installed by
    // scripts/setup-host.sh; parsed only: this kernel's LSMs do not include AppArmor).
    let policy = dir.path().join("policy.aa");
    let policy_arg = policy.display().to_string();
    ngram_e2e::ids::ngram_ids(&[
        "profile",
        "export-apparmor",
        &profile.name,
        "-o",
        &policy_arg,
    ])
    .success();
    let text = std::fs::read_to_string(&policy).expect("the exported AppArmor profile");
    assert!(
        text.contains("  /d/data/* rm,") && text.contains("/bin/busybox mrix,"),
        "the AppArmor profile lacks the learned directory or program:\n{text}"
    );
    let mut parse = Command::new("apparmor_parser");
    parse.args(["--skip-kernel-load", "--skip-cache", "--skip-read-cache"]);
    parse.arg(&policy);
    run_cmd(parse, b"", Duration::from_secs(60)).success();
    // The same loop, then the same two commands pointed elsewhere.
    let attack = format!(
        "{}; cat /d/secret/key; echo pwned >/d/out/f; echo end",
        trained_loop(50)
    );
    let mut problems = Vec::new();
    for runtime in [ALERT, ENFORCE] {
        let _ = std::fs::remove_file(dir.path().join("out/f"));
        let (c, out, found) = run_attack(&e, runtime, &dir, &profile.label, &attack);
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

/// A static program built from `fixtures/PROG.c` (at `/u/PROG`, read-only) and a data tree
/// (`/d`, read-only) for one test.
struct StaticFixture {
    dir: TempDir,
    prog: &'static str,
}

impl StaticFixture {
    /// Build `prog` (with pthreads) and create the data directories `dirs` under `/d`.
    fn new(prog: &'static str, dirs: &[&str]) -> Self {
        let dir = TempDir::new(prog);
        std::fs::create_dir_all(dir.path().join("u")).expect("fixture directory");
        for sub in dirs {
            std::fs::create_dir_all(dir.path().join("d").join(sub)).expect("fixture directory");
        }
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("fixtures/{prog}.c"));
        let mut cc = Command::new("cc");
        cc.args(["-static", "-O2", "-pthread", "-o"])
            .arg(dir.path().join("u").join(prog))
            .arg(&src);
        run_cmd(cc, b"", Duration::from_secs(120)).success();
        Self { dir, prog }
    }

    /// Write a data file (`rel` under `/d`).
    fn write(&self, rel: &str, data: impl AsRef<[u8]>) {
        std::fs::write(self.dir.path().join("d").join(rel), data).expect("fixture data");
    }

    /// Run `/u/PROG ARGS` in a container of `runtime` with profile label `label`: its
    /// output, the container's id and the time just before it started.
    fn run(
        &self,
        e: &E2e,
        runtime: &str,
        label: &str,
        args: &[&str],
    ) -> (ngram_e2e::Output, String, u64) {
        let u = format!("{}:/u:ro", self.dir.path().join("u").display());
        let d = format!("{}:/d:ro", self.dir.path().join("d").display());
        let exe = format!("/u/{}", self.prog);
        let mut all = vec!["--label", label, "-v", &u, "-v", &d, BUSYBOX, &exe];
        all.extend_from_slice(args);
        let c = e.container();
        let t0 = now_ns();
        let out = e.run_with(runtime, &c, &all);
        let id = e.container_id(&c);
        let _ = e.docker(&["rm", "-f", &c.name]);
        (out, id, t0)
    }
}

/// The fixture's counts: "opened A a B b refused r failed f".
#[derive(Debug, Default)]
struct Race {
    from_a: u64,
    from_b: u64,
    refused: u64,
}

impl Race {
    fn parse(out: &str) -> Option<Self> {
        let w: Vec<&str> = out.split_whitespace().collect();
        let at = w.iter().position(|x| *x == "opened")?;
        let n = |i: usize| w.get(at + i)?.parse().ok();
        Some(Self {
            from_a: n(2)?,
            from_b: n(4)?,
            refused: n(6)?,
        })
    }
}

/// The time-of-check/time-of-use race of issue 16: a second thread rewrites the path while
/// the call waits, so that the supervisor reads a harmless directory and the kernel opens the
/// secret one (`fixtures/toctou.c`). Trained flipping between two harmless directories. Alert
/// mode: the control (the secret is read). Enforce mode: the secret's reads are refused (by
/// class when the first read sees it; as a race when the second read, just before the answer,
/// sees the rewrite, and then every later one of the process); fewer than a tenth of alert
/// mode's get through (the race after the second read, which only the kernel can close).
#[test]
fn a_path_rewritten_by_another_thread_during_the_check_is_refused() {
    let Some(e) = setup_ids("a_path_rewritten_by_another_thread_during_the_check_is_refused")
    else {
        return;
    };
    let fx = StaticFixture::new("toctou", &["data", "dat2", "secr"]);
    for sub in ["data", "dat2", "secr"] {
        fx.write(&format!("{sub}/key"), format!("/d/{sub}/"));
    }
    let profile = Profile::new("toctou");
    let go = |runtime: &str, other: &str| {
        let (out, id, t0) = fx.run(&e, runtime, &profile.label, &["/d/data/", other, "4000"]);
        let race = Race::parse(&out.stdout)
            .unwrap_or_else(|| panic!("{runtime}: the fixture did not report: {out}"));
        (race, id, t0)
    };
    for run_no in 1..=2 {
        let (race, _, _) = go(TRAIN, "/d/dat2/");
        assert!(race.from_a > 0 && race.from_b > 0, "training: {race:?}");
        profile.wait_for_runs(run_no, MERGE_TIMEOUT);
    }
    let (alerted, id, t0) = go(ALERT, "/d/secr/");
    let found = wait_for_alerts(&id, t0, Duration::from_secs(10));
    println!("alert mode: {alerted:?}; {} alerts", found.len());
    assert!(
        alerted.from_b > 0 && alerted.refused == 0,
        "alert mode: the secret was not read (the control): {alerted:?}"
    );
    assert!(
        found
            .iter()
            .any(|a| a.rule == "argument" && a.json["output_fields"]["fd.name"] == "/d/secr/key"),
        "alert mode: the read of /d/secr/key is not reported"
    );
    let (enforced, id, t0) = go(ENFORCE, "/d/secr/");
    // Whether the second read catches the rewrite depends on the flipping thread running
    // during the microseconds between the reads, so on the machine's load: counted, printed,
    // not required (the unit test `an_argument_rewritten_during_its_check_is_refused` covers
    // the rule itself).
    std::thread::sleep(Duration::from_secs(2));
    let found = alerts_since(&id, t0);
    let races = found.iter().filter(|a| a.rule == "race").count();
    println!(
        "enforce mode: {enforced:?}: {} of 4000 reads of the secret got through, {} refused, \
         {races} race(s) caught",
        enforced.from_b, enforced.refused
    );
    assert!(
        enforced.refused > 0,
        "enforce mode refused nothing: {enforced:?}"
    );
    assert!(
        enforced.from_b * 10 < alerted.from_b.max(10),
        "enforce mode let a tenth or more of alert mode's reads of the secret through: \
         {enforced:?} vs {alerted:?}"
    );
    for a in found.iter().filter(|a| a.rule == "race") {
        let why = a.json["output_fields"]["ngram.argument"]
            .as_str()
            .unwrap_or("");
        assert!(
            why.contains("changed while it was checked") && a.json["priority"] == "Critical",
            "a race alert does not say what changed: {}",
            a.json
        );
    }
}

/// A program the profile knows entering namespaces it never entered in training: busybox's
/// `unshare` applet is the same executable as the trained shell (`/bin/busybox`), so neither
/// the new-program rule nor a start-up anomaly names it; the class `unshare NEWNS|NEWUSER` of
/// its `unshare` call does. Docker's default seccomp profile would refuse the call before the
/// supervisor saw it, hence `seccomp=unconfined` (the case where the IDS is the last line).
#[test]
fn a_known_program_entering_new_namespaces_is_caught_by_the_flags() {
    let Some(e) = setup_ids("a_known_program_entering_new_namespaces_is_caught_by_the_flags")
    else {
        return;
    };
    let dir = TempDir::new("namespaces");
    std::fs::create_dir_all(dir.path().join("data")).expect("fixture directory");
    std::fs::write(dir.path().join("data/a.txt"), "data\n").expect("fixture data");
    let profile = Profile::new("nsflags");
    let mount = mount_of(&dir);
    let go = |runtime: &str, script: &str| {
        let c = e.container();
        let t0 = now_ns();
        let out = e.run_with(
            runtime,
            &c,
            &[
                "--label",
                &profile.label,
                "--security-opt",
                "seccomp=unconfined",
                "-v",
                &mount,
                BUSYBOX,
                "sh",
                "-c",
                script,
            ],
        );
        let id = e.container_id(&c);
        let _ = e.docker(&["rm", "-f", &c.name]);
        (out, id, t0)
    };
    for run_no in 1..=2 {
        go(TRAIN, &trained_loop(1500)).0.success();
        profile.wait_for_runs(run_no, MERGE_TIMEOUT);
    }
    let attack = format!(
        "{}; unshare -U -m sh -c 'echo inside' ; echo end",
        trained_loop(50)
    );
    let mut problems = Vec::new();
    for runtime in [ALERT, ENFORCE] {
        let (out, id, t0) = go(runtime, &attack);
        let found = wait_for_alerts(&id, t0, Duration::from_secs(10));
        let named = found.iter().any(|a| {
            a.rule == "argument"
                && a.json["output_fields"]["ngram.argument"]
                    .as_str()
                    .is_some_and(|w| w.contains("unshare NEWNS|NEWUSER"))
        });
        let entered = out.stdout.contains("inside");
        println!(
            "{runtime}: entered {entered}; {} alerts; the unshare named {named}",
            found.len()
        );
        if !named {
            problems.push(format!(
                "{runtime}: the unshare's namespaces are not reported"
            ));
        }
        if runtime == ALERT && !entered {
            problems.push(format!(
                "alert mode: the control failed (no namespace entered): {out}"
            ));
        }
        if runtime == ENFORCE && entered {
            problems.push(format!("enforce mode let the namespaces be entered: {out}"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Code loaded from a directory no program of the image loaded code from (decision 43): a
/// static fixture maps a file executable, as a loader, a module load (`MODULE LOAD`,
/// `LOAD_FILE`, `ctypes`) or an `LD_PRELOAD` of a dropped shared object does. Trained mapping
/// `/d/lib/code.bin` executable and reading (mapping as data) `/d/drop/data.bin`; then it maps
/// `/d/drop/evil.bin` executable: a directory it reads, the same program, the same calls, but
/// code. Alert mode reports it (the mapping happens: the control); enforce refuses the `mmap`.
#[test]
fn code_mapped_from_a_directory_never_loaded_from_is_caught() {
    let Some(e) = setup_ids("code_mapped_from_a_directory_never_loaded_from_is_caught") else {
        return;
    };
    let fx = StaticFixture::new("mapexec", &["lib", "drop"]);
    for f in ["lib/code.bin", "drop/evil.bin", "drop/data.bin"] {
        fx.write(f, vec![0xc3u8; 4096]);
    }
    let profile = Profile::new("mapexec");
    let go = |runtime: &str, mode: &str, file: &str, n: &str| {
        fx.run(&e, runtime, &profile.label, &[mode, file, n])
    };
    for run_no in 1..=2 {
        let (out, _, _) = go(TRAIN, "exec", "/d/lib/code.bin", "300");
        assert!(out.stdout.contains("mapped 300"), "training: {out}");
        profile.wait_for_runs(2 * run_no - 1, MERGE_TIMEOUT);
        let (out, _, _) = go(TRAIN, "read", "/d/drop/data.bin", "300");
        assert!(out.stdout.contains("mapped 300"), "training: {out}");
        profile.wait_for_runs(2 * run_no, MERGE_TIMEOUT);
    }
    let mut problems = Vec::new();
    for runtime in [ALERT, ENFORCE] {
        let (known, id_known, t_known) = go(runtime, "exec", "/d/lib/code.bin", "5");
        let (out, id, t0) = go(runtime, "exec", "/d/drop/evil.bin", "1");
        let found = wait_for_alerts(&id, t0, Duration::from_secs(10));
        let named = found.iter().any(|a| {
            a.rule == "argument"
                && a.json["output_fields"]["fd.name"] == "/d/drop/evil.bin"
                && a.json["output_fields"]["ngram.argument"]
                    .as_str()
                    .is_some_and(|w| w.contains("loaded code from /d/drop"))
        });
        let known_alerts = alerts_since(&id_known, t_known);
        println!(
            "{runtime}: trained file: {} ({} alerts); dropped file: {} (reported {named})",
            known.stdout.trim(),
            known_alerts.len(),
            out.stdout.trim()
        );
        if !known.stdout.contains("mapped 5") || !known_alerts.is_empty() {
            problems.push(format!(
                "{runtime}: the trained mapping was judged: {known}"
            ));
        }
        if !named {
            problems.push(format!("{runtime}: the dropped code is not reported"));
        }
        let mapped = out.stdout.contains("mapped 1");
        if runtime == ALERT && !mapped {
            problems.push(format!("alert mode: the control failed: {out}"));
        }
        if runtime == ENFORCE && (mapped || !out.stdout.contains("refused 1")) {
            problems.push(format!("enforce mode did not refuse the mapping: {out}"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Decision 70: the first calls of a program that seldom started (here an operator's
/// `docker exec` shell, the same busybox as the service's loop) are judged by what the program
/// did settled. Before, its sparse start-up phase made it unjudged, and a file created where
/// the program never created one went unreported.
#[test]
fn an_exec_shell_creating_a_file_where_the_program_never_did_is_reported() {
    let Some(e) =
        setup_ids("an_exec_shell_creating_a_file_where_the_program_never_did_is_reported")
    else {
        return;
    };
    let dir = TempDir::new("arguments-exec");
    std::fs::create_dir_all(dir.path().join("data")).expect("fixture directory");
    std::fs::write(dir.path().join("data/a.txt"), "data\n").expect("fixture data");
    let profile = Profile::new("args-exec");
    for run_no in 1..=2 {
        run(&e, TRAIN, &dir, &profile.label, &trained_loop(300)).success();
        profile.wait_for_runs(run_no, MERGE_TIMEOUT);
    }
    let c = e.container();
    let mount = mount_of(&dir);
    let service = format!("{}; sleep 600", trained_loop(300));
    e.run_detached_with(ALERT, &c, &busybox_args(&profile.label, &mount, &service));
    let id = e.container_id(&c);
    // The loop's own start-up is over when it is sleeping.
    std::thread::sleep(Duration::from_secs(3));
    let t0 = now_ns();
    let out = e.docker(&[
        "exec",
        &c.name,
        "sh",
        "-c",
        "echo x > /root/x && echo written",
    ]);
    assert!(
        out.stdout.contains("written"),
        "alert mode refuses nothing: {out}"
    );
    let found = wait_for_alerts(&id, t0, Duration::from_secs(10));
    let reported = found.iter().any(|a| {
        a.rule == "argument"
            && a.json["output_fields"]["fd.name"] == "/root/x"
            && a.json["output_fields"]["ngram.argument"]
                .as_str()
                .is_some_and(|w| w.contains("create"))
    });
    let shown: Vec<String> = found
        .iter()
        .map(|a| {
            format!(
                "{} {} {}",
                a.rule, a.exe, a.json["output_fields"]["ngram.argument"]
            )
        })
        .collect();
    assert!(
        reported,
        "the exec'd shell's create of /root/x was not reported as an argument: {shown:?}"
    );
}

/// What is wrong with an attack run under `runtime` that read `file` holding [`SECRET`]: an
/// argument alert about `file` whose reason contains `why` is required, and the secret must be
/// out in alert mode and not in enforce.
fn secret_read_judged(
    runtime: &str,
    out: &ngram_e2e::Output,
    found: &[ngram_e2e::ids::Alert],
    file: &str,
    why: &str,
) -> Vec<String> {
    let reported = found.iter().any(|a| {
        a.rule == "argument"
            && a.json["output_fields"]["fd.name"] == file
            && a.json["output_fields"]["ngram.argument"]
                .as_str()
                .is_some_and(|w| w.contains(why))
    });
    let leaked = out.stdout.contains(SECRET);
    println!("{runtime}: {file} reported {reported}, secret out {leaked}");
    let mut problems = Vec::new();
    if !reported {
        let shown: Vec<String> = found.iter().map(|a| a.json["output"].to_string()).collect();
        problems.push(format!("{runtime}: {file} not reported: {shown:?}"));
    }
    if runtime == ALERT && !leaked {
        problems.push(format!("alert mode stopped the read: {out}"));
    }
    if runtime == ENFORCE && leaked {
        problems.push(format!("enforce let the secret out: {out}"));
    }
    problems
}

/// Decision 119: a credential file is judged by itself. The loop is trained reading
/// `/etc/passwd`, so reading `/etc` is routine for it; reading `/etc/shadow` (a fixture bound
/// there) is still reported, and refused in enforce mode, where a directory class would have
/// let it through.
#[test]
fn a_credential_file_in_a_routinely_read_directory_is_judged_by_itself() {
    let Some(e) = setup_ids("a_credential_file_in_a_routinely_read_directory_is_judged_by_itself")
    else {
        return;
    };
    let dir = TempDir::new("arguments-credential");
    std::fs::write(dir.path().join("passwd"), "root:x:0:0::/root:/bin/sh\n").expect("fixture");
    std::fs::write(
        dir.path().join("shadow"),
        format!("root:{SECRET}:1::::::\n"),
    )
    .expect("fixture shadow");
    let passwd = format!("{}:/etc/passwd:ro", dir.path().join("passwd").display());
    let shadow = format!("{}:/etc/shadow:ro", dir.path().join("shadow").display());
    let profile = Profile::new("args-credential");
    let run_script = |runtime: &str, c: &ngram_e2e::Container, script: &str| {
        e.run_with(
            runtime,
            c,
            &[
                "--label",
                &profile.label,
                "-v",
                &passwd,
                "-v",
                &shadow,
                BUSYBOX,
                "sh",
                "-c",
                script,
            ],
        )
    };
    for run_no in 1..=2 {
        run_script(TRAIN, &e.container(), &loop_reading("/etc/passwd", 1500)).success();
        profile.wait_for_runs(run_no, MERGE_TIMEOUT);
    }
    let attack = format!(
        "{}; cat /etc/shadow; echo end",
        loop_reading("/etc/passwd", 50)
    );
    let mut problems = Vec::new();
    for runtime in [ALERT, ENFORCE] {
        let t0 = now_ns();
        let c = e.container();
        let out = run_script(runtime, &c, &attack);
        let id = e.container_id(&c);
        let found = wait_for_alerts(&id, t0, Duration::from_secs(10));
        problems.extend(secret_read_judged(
            runtime,
            &out,
            &found,
            "/etc/shadow",
            "credential file /etc/shadow",
        ));
        let _ = e.docker(&["rm", "-f", &c.name]);
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Decision 120: a lookup of a missing file teaches its directory no read. The loop is trained
/// reading `/d/data/a.txt` and, like a module loader, looking for `/d/app/package.json`, which
/// does not exist, beside a key that does. Afterwards its lookups are still normal (no alert;
/// answered ENOENT in enforce, so the loop goes on), and `cat /d/app/key.pem` is reported, and
/// refused in enforce, where the lookups had taught `/d/app` as read before.
#[test]
fn a_lookup_of_a_missing_file_teaches_its_directory_no_read() {
    let Some(e) = setup_ids("a_lookup_of_a_missing_file_teaches_its_directory_no_read") else {
        return;
    };
    let dir = TempDir::new("arguments-probe");
    for sub in ["data", "app"] {
        std::fs::create_dir_all(dir.path().join(sub)).expect("fixture directory");
    }
    std::fs::write(dir.path().join("data/a.txt"), "data\n").expect("fixture data");
    std::fs::write(dir.path().join("app/key.pem"), format!("{SECRET}\n")).expect("fixture key");
    let profile = Profile::new("args-probe");
    let looking = |iterations: u32| {
        format!(
            "i=0; while [ $i -lt {iterations} ]; do cat /d/data/a.txt >/dev/null; \
             cat /d/app/package.json 2>/dev/null; echo tick >/dev/null; i=$((i+1)); done"
        )
    };
    for run_no in 1..=2 {
        run(&e, TRAIN, &dir, &profile.label, &looking(1500)).success();
        profile.wait_for_runs(run_no, MERGE_TIMEOUT);
    }
    let attack = format!("{}; cat /d/app/key.pem; echo end", looking(50));
    let mut problems = Vec::new();
    for runtime in [ALERT, ENFORCE] {
        let (c, out, found) = run_attack(&e, runtime, &dir, &profile.label, &attack);
        let about = |file: &str| {
            found
                .iter()
                .filter(|a| a.rule == "argument" && a.json["output_fields"]["fd.name"] == file)
                .count()
        };
        problems.extend(secret_read_judged(
            runtime,
            &out,
            &found,
            "/d/app/key.pem",
            "only lookups of missing files",
        ));
        if about("/d/app/package.json") > 0 {
            problems.push(format!("{runtime}: a lookup like training's was reported"));
        }
        if !out.stdout.contains("end") {
            problems.push(format!("{runtime}: the loop did not finish: {out}"));
        }
        let _ = e.docker(&["rm", "-f", &c.name]);
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
