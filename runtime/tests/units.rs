//! Pure parts of the runtime: signals, executable lookup, bundle errors, log lines, ps filter.

use std::path::Path;

use ngram_runtime::bundle::{parse_spec, BundleError};
use ngram_runtime::executor::{lookup_with, LookupError};
use ngram_runtime::signal::parse_signal;

#[test]
fn signals_by_number_and_name_including_realtime() {
    assert_eq!(parse_signal("9"), Ok(9));
    assert_eq!(parse_signal("37"), Ok(37));
    assert_eq!(parse_signal("64"), Ok(64));
    assert_eq!(parse_signal("KILL"), Ok(9));
    assert_eq!(parse_signal("sigterm"), Ok(15));
    assert_eq!(parse_signal("SIGRTMIN"), Ok(34));
    assert_eq!(parse_signal("SIGRTMIN+3"), Ok(37));
    assert_eq!(parse_signal("RTMIN+30"), Ok(64));
    assert_eq!(parse_signal("SIGRTMAX-1"), Ok(63));
    assert_eq!(parse_signal("RTMAX"), Ok(64));
    for n in 1..=64 {
        assert_eq!(parse_signal(&n.to_string()), Ok(n));
    }
    for bad in [
        "0", "65", "-1", "SIGFOO", "RTMIN+31", "RTMAX+1", "RTMINx", "",
    ] {
        assert!(parse_signal(bad).is_err(), "{bad}");
    }
}

fn fake_fs(
    files: &'static [&'static str],
    dirs: &'static [&'static str],
    noexec: &'static [&'static str],
) -> (impl Fn(&Path) -> Option<bool>, impl Fn(&Path) -> bool) {
    let exists = move |p: &Path| {
        let s = p.to_str().unwrap_or("");
        if files.contains(&s) {
            Some(false)
        } else if dirs.contains(&s) {
            Some(true)
        } else {
            None
        }
    };
    let runnable = move |p: &Path| !noexec.contains(&p.to_str().unwrap_or(""));
    (exists, runnable)
}

#[test]
fn lookup_uses_path_and_runc_wording() {
    let (e, r) = fake_fs(
        &["/bin/sh", "/usr/bin/data"],
        &["/bin/dir"],
        &["/usr/bin/data"],
    );
    assert_eq!(
        lookup_with("sh", Some("/usr/bin:/bin"), &e, &r),
        Ok("/bin/sh".into())
    );
    let nf = lookup_with("nosuchcmd", Some("/usr/bin:/bin"), &e, &r).unwrap_err();
    assert_eq!(nf, LookupError::NotFound("nosuchcmd".into()));
    assert_eq!(
        nf.to_string(),
        "exec: \"nosuchcmd\": executable file not found in $PATH"
    );
    let abs = lookup_with("/nope", None, &e, &r).unwrap_err();
    assert!(abs.to_string().contains("no such file or directory"));
    let denied = lookup_with("/usr/bin/data", None, &e, &r).unwrap_err();
    assert!(denied.to_string().contains("permission denied"));
    assert!(lookup_with("/bin/dir", None, &e, &r)
        .unwrap_err()
        .to_string()
        .contains("is a directory"));
    assert_eq!(lookup_with("", None, &e, &r), Err(LookupError::NoArgs));
}

const GOOD: &str = r#"{"ociVersion":"1.0.2","root":{"path":"rootfs"},
 "process":{"args":["sh"],"cwd":"/","user":{"uid":0,"gid":0}},"linux":{}}"#;

#[test]
fn bundle_errors_are_one_line_and_name_the_field() {
    let b = Path::new("/b");
    assert!(parse_spec(b, GOOD).is_ok());
    let bad_type = GOOD.replace(r#""args":["sh"]"#, r#""args":"sh""#);
    let e = parse_spec(b, &bad_type).unwrap_err();
    let msg = e.to_string();
    assert!(
        matches!(e, BundleError::Field { ref field, .. } if field == "process.args"),
        "{msg}"
    );
    assert!(!msg.contains('\n'));
    let no_process = r#"{"ociVersion":"1.0.2","root":{"path":"rootfs"},"linux":{}}"#;
    assert!(parse_spec(b, no_process)
        .unwrap_err()
        .to_string()
        .contains("`process`"));
    let empty_args = GOOD.replace(r#""args":["sh"]"#, r#""args":[]"#);
    assert!(parse_spec(b, &empty_args)
        .unwrap_err()
        .to_string()
        .contains("process.args"));
    let rel_cwd = GOOD.replace(r#""cwd":"/""#, r#""cwd":"tmp""#);
    assert!(parse_spec(b, &rel_cwd)
        .unwrap_err()
        .to_string()
        .contains("process.cwd"));
    let old = GOOD.replace("1.0.2", "0.9");
    assert!(parse_spec(b, &old)
        .unwrap_err()
        .to_string()
        .contains("ociVersion"));
    let syntax = parse_spec(b, "{\"ociVersion\":").unwrap_err().to_string();
    assert!(
        syntax.contains("config.json") && !syntax.contains('\n'),
        "{syntax}"
    );
    let uid = GOOD.replace(r#""uid":0"#, r#""uid":"root""#);
    assert!(parse_spec(b, &uid)
        .unwrap_err()
        .to_string()
        .contains("process.user.uid"));
}

#[test]
fn log_lines_are_what_containerd_reads() {
    use ngram_runtime::logfmt::render_line;
    let l = render_line(
        true,
        "error",
        "exec: \"x\": executable file not found in $PATH",
        "2026-01-01T00:00:00Z",
    );
    let v: serde_json::Value = serde_json::from_str(&l).unwrap();
    assert_eq!(v["level"], "error");
    assert_eq!(v["msg"], "exec: \"x\": executable file not found in $PATH");
    assert_eq!(v["time"], "2026-01-01T00:00:00Z");
    let t = render_line(false, "warning", "a \"b\"", "T");
    assert_eq!(t, "time=\"T\" level=warning msg=\"a \\\"b\\\"\"");
}

#[test]
fn ps_table_keeps_header_and_container_pids() {
    let out = "UID PID PPID C STIME TTY TIME CMD\nroot 1 0 0 x ? 0 init\nroot 42 1 0 x ? 0 sleep\nroot 43 1 0 x ? 0 other\n";
    let f = ngram_runtime::commands::filter_ps(out, &[42]);
    assert_eq!(
        f,
        "UID PID PPID C STIME TTY TIME CMD\nroot 42 1 0 x ? 0 sleep\n"
    );
}

#[test]
fn update_flags_become_resources() {
    use clap::Parser;
    #[derive(Parser)]
    struct U {
        #[command(flatten)]
        u: liboci_cli::Update,
    }
    let u = U::try_parse_from([
        "x",
        "--memory",
        "1000",
        "--memory-swap=-1",
        "--pids-limit",
        "5",
        "--cpu-share",
        "512",
        "id",
    ])
    .unwrap();
    let r = ngram_runtime::commands::resources_from_flags(&u.u).unwrap();
    let mem = r.memory().unwrap();
    assert_eq!(mem.limit(), Some(1000));
    assert_eq!(mem.swap(), Some(-1));
    assert_eq!(r.pids().as_ref().unwrap().limit(), 5);
    assert_eq!(r.cpu().as_ref().unwrap().shares(), Some(512));
}

#[test]
fn features_document_has_cgroup_and_seccomp() {
    let f = ngram_runtime::commands::features_json();
    assert_eq!(f["linux"]["cgroup"]["v1"], true);
    assert_eq!(f["linux"]["cgroup"]["systemd"], true);
    assert_eq!(f["linux"]["seccomp"]["enabled"], true);
}

#[test]
fn start_failures_are_worded_as_runc_words_them() {
    let lib = "failed to create container: exec process failed with error error in executing process : exec: \"x\": executable file not found in $PATH";
    assert_eq!(
        ngram_runtime::error::runc_wording(lib),
        "unable to start container process: exec: \"x\": executable file not found in $PATH"
    );
    assert_eq!(ngram_runtime::error::runc_wording("io error"), "io error");
}

#[test]
fn exec_spec_borrows_cap_sys_admin_only_in_effective_and_permitted() {
    use ngram_runtime::commands::add_sys_admin;
    let mut p = serde_json::json!({"args":["sh"],"capabilities":{
        "bounding":["CAP_KILL"],"effective":["CAP_KILL"],"permitted":["CAP_KILL"]}});
    assert!(add_sys_admin(&mut p));
    assert_eq!(
        p["capabilities"]["effective"],
        serde_json::json!(["CAP_KILL", "CAP_SYS_ADMIN"])
    );
    assert_eq!(
        p["capabilities"]["permitted"],
        serde_json::json!(["CAP_KILL", "CAP_SYS_ADMIN"])
    );
    assert_eq!(
        p["capabilities"]["bounding"],
        serde_json::json!(["CAP_KILL"])
    );
    // Already there, or no capabilities at all: nothing lent.
    assert!(!add_sys_admin(&mut p));
    assert!(!add_sys_admin(&mut serde_json::json!({"args":["sh"]})));
}

#[test]
fn cgroup_v1_mount_points_and_spec_flags() {
    use ngram_runtime::mounts::{cgroup_mount_flags, cgroup_mount_points};
    use nix::mount::MsFlags;
    let info = "116 115 0:58 / /sys/fs/cgroup rw,nosuid - tmpfs tmpfs rw,mode=755\n\
        117 116 0:29 /docker/x /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n\
        120 116 0:32 /docker/x /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n\
        130 100 0:40 / /proc rw - proc proc rw\n";
    assert_eq!(
        cgroup_mount_points(info, Path::new("/sys/fs/cgroup")),
        ["/sys/fs/cgroup/cpu", "/sys/fs/cgroup/memory"]
    );
    let spec = GOOD.replace(
        r#""linux":{}"#,
        r#""linux":{},"mounts":[{"destination":"/sys/fs/cgroup","type":"cgroup","source":"cgroup","options":["ro","nosuid","noexec","nodev","relatime"]}]"#,
    );
    let spec = parse_spec(Path::new("/b"), &spec).unwrap();
    let (dest, flags) = cgroup_mount_flags(&spec).unwrap();
    assert_eq!(dest, Path::new("/sys/fs/cgroup"));
    assert_eq!(
        flags,
        MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV
    );
    assert!(cgroup_mount_flags(&parse_spec(Path::new("/b"), GOOD).unwrap()).is_none());
}

#[test]
fn failed_starts_name_the_missing_sysctl() {
    use ngram_runtime::diagnose::{missing_sysctls, sysctl_path};
    assert_eq!(
        sysctl_path("net.ipv4.ip_forward"),
        Path::new("net/ipv4/ip_forward")
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("net/ipv4")).unwrap();
    std::fs::write(dir.path().join("net/ipv4/ip_forward"), "0").unwrap();
    let spec = GOOD.replace(
        r#""linux":{}"#,
        r#""linux":{"sysctl":{"net.ipv4.ip_forward":"1","net.ngram.nonexistent":"1"}}"#,
    );
    let spec = parse_spec(Path::new("/b"), &spec).unwrap();
    assert_eq!(
        missing_sysctls(&spec, dir.path()),
        ["net.ngram.nonexistent"]
    );
}

#[test]
fn hybrid_hosts_have_named_and_unified_extra_hierarchies() {
    use ngram_runtime::hybrid::extra_hierarchies;
    let hybrid = "31 25 0:26 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,name=systemd\n\
        32 25 0:27 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n\
        41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n\
        50 25 0:40 / /proc rw - proc proc rw\n";
    assert_eq!(
        extra_hierarchies(hybrid),
        [
            Path::new("/sys/fs/cgroup/systemd"),
            Path::new("/sys/fs/cgroup/unified")
        ]
    );
    let v2_only = "41 1 0:38 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
    assert!(extra_hierarchies(v2_only).is_empty());
}

#[test]
fn the_unified_hierarchy_is_named_on_hybrid_hosts_only() {
    use ngram_runtime::hybrid::unified_hierarchy;
    let hybrid = "31 25 0:26 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,name=systemd\n\
        32 25 0:27 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n\
        41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
    assert_eq!(
        unified_hierarchy(hybrid).as_deref(),
        Some(Path::new("/sys/fs/cgroup/unified"))
    );
    // v2 only: libcontainer's v2 manager puts exec processes there itself.
    assert_eq!(
        unified_hierarchy("41 1 0:38 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n"),
        None
    );
    // A named v1 hierarchy alone is not v1 controllers: not hybrid.
    let named_only = "31 25 0:26 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,name=systemd\n\
        41 1 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n";
    assert_eq!(unified_hierarchy(named_only), None);
    // v1 controllers without cgroup2.
    assert_eq!(
        unified_hierarchy("32 25 0:27 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"),
        None
    );
}

#[test]
fn default_profile_applies_only_without_image_and_profile_label() {
    use ngram_runtime::commands::with_default_profile;
    use ngram_supervisor::identity::{Identity, PROFILE_LABEL};
    let bare = Identity::default();
    let got = with_default_profile(bare.clone(), Some("oci"));
    assert_eq!(
        got.labels.get(PROFILE_LABEL).map(String::as_str),
        Some("oci")
    );
    assert_eq!(
        with_default_profile(bare.clone(), None)
            .labels
            .get(PROFILE_LABEL),
        None
    );
    let mut labelled = bare.clone();
    labelled
        .labels
        .insert(PROFILE_LABEL.to_owned(), "mine".to_owned());
    let got = with_default_profile(labelled, Some("oci"));
    assert_eq!(
        got.labels.get(PROFILE_LABEL).map(String::as_str),
        Some("mine")
    );
    let imaged = Identity {
        image_id: Some("sha256:ab".to_owned()),
        ..bare.clone()
    };
    assert_eq!(
        with_default_profile(imaged, Some("oci"))
            .labels
            .get(PROFILE_LABEL),
        None
    );
    // An annotated image reference (CRI) is an image too.
    let referenced = Identity {
        image_ref: Some("docker.io/library/nginx:latest".to_owned()),
        ..bare
    };
    assert_eq!(
        with_default_profile(referenced, Some("oci"))
            .labels
            .get(PROFILE_LABEL),
        None
    );
}
