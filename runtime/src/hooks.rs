//! The OCI hooks the runtime runs itself or wraps, where libcontainer departs from the spec:
//! poststart and poststop hooks run one by one, a failing one is logged as a warning and the
//! others still run (libcontainer stops at the first failure and fails `start`); and the state
//! a hook reads on stdin names the bundle the caller gave, not the private copy `create` lends
//! to libcontainer (`<root>/.lent-bundles/<id>`).

use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use libcontainer::config::YoukiConfig;
use libcontainer::container::State;
use oci_spec::runtime::Hook;

/// In a lent bundle: the absolute path of the bundle the caller gave (raw bytes, no newline).
pub const CALLER_BUNDLE_FILE: &str = "caller-bundle";

/// The hidden subcommand that runs a prestart or createRuntime hook with the caller's bundle
/// in the state on its stdin (see [`wrap`]).
pub const WRAPPER_COMMAND: &str = "__oci-hook";

/// A hook that could not be run or failed.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("container \"{id}\": {kind} hook {index} ({path}): {source}")]
    Failed {
        id: String,
        kind: &'static str,
        index: usize,
        path: PathBuf,
        #[source]
        source: libcontainer::hooks::HookError,
    },
    #[error("container state {dir}: {message}")]
    Config { dir: PathBuf, message: String },
    #[error("hook {path}: {source}")]
    Spawn {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("hook wrapper: reading the container state on stdin: {0}")]
    Stdin(#[source] std::io::Error),
    #[error("hook wrapper: the container state on stdin: {0}")]
    State(#[source] serde_json::Error),
}

/// The bundle the caller gave for a container whose libcontainer bundle is `bundle`: the
/// recorded one when `bundle` is a lent copy, else `bundle` itself.
pub fn caller_bundle(bundle: &Path) -> PathBuf {
    match std::fs::read(bundle.join(CALLER_BUNDLE_FILE)) {
        Ok(bytes) if bytes.first() == Some(&b'/') => PathBuf::from(OsString::from_vec(bytes)),
        _ => bundle.to_owned(),
    }
}

/// The post-lifecycle hooks the runtime runs itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostHooks {
    Poststart,
    Poststop,
}

impl PostHooks {
    fn name(self) -> &'static str {
        match self {
            PostHooks::Poststart => "poststart",
            PostHooks::Poststop => "poststop",
        }
    }
}

/// Take the `kind` hooks out of the container's saved libcontainer config in `state_dir` (so
/// libcontainer does not run them) and return them. Nothing is written when there are none.
pub fn take(state_dir: &Path, kind: PostHooks) -> Result<Vec<Hook>, HookError> {
    let config_err = |e: libcontainer::config::ConfigError| HookError::Config {
        dir: state_dir.to_owned(),
        message: crate::error::chain(&e),
    };
    let mut config = YoukiConfig::load(state_dir).map_err(config_err)?;
    let Some(hooks) = config.hooks.as_mut() else {
        return Ok(Vec::new());
    };
    let taken = match kind {
        PostHooks::Poststart => hooks.poststart_mut().take(),
        PostHooks::Poststop => hooks.poststop_mut().take(),
    }
    .unwrap_or_default();
    if !taken.is_empty() {
        config.save(state_dir).map_err(config_err)?;
    }
    Ok(taken)
}

/// Put `hooks` back into the saved config (when the operation they were taken for failed).
pub fn put_back(state_dir: &Path, kind: PostHooks, hooks: Vec<Hook>) {
    if hooks.is_empty() {
        return;
    }
    let restored = YoukiConfig::load(state_dir).and_then(|mut config| {
        let all = config.hooks.get_or_insert_with(Default::default);
        match kind {
            PostHooks::Poststart => all.set_poststart(Some(hooks)),
            PostHooks::Poststop => all.set_poststop(Some(hooks)),
        };
        config.save(state_dir)
    });
    if let Err(e) = restored {
        tracing::warn!(
            "restoring the {} hooks of {}: {}",
            kind.name(),
            state_dir.display(),
            crate::error::chain(&e)
        );
    }
}

/// Run `hooks` in order with `state` on their stdin (its bundle replaced by the caller's), as
/// the spec wants for poststart and poststop: a failing hook is logged as a warning and the
/// next one still runs. Returns the failures (already logged).
pub fn run_each(
    kind: PostHooks,
    hooks: &[Hook],
    state: &State,
    cwd: Option<&Path>,
) -> Vec<HookError> {
    let mut state = state.clone();
    state.bundle = caller_bundle(&state.bundle);
    let mut failures = Vec::new();
    for (i, hook) in hooks.iter().enumerate() {
        let one = vec![hook.clone()];
        if let Err(source) =
            libcontainer::hooks::run_hooks(Some(&one), Some(&state), cwd, None, None)
        {
            let e = HookError::Failed {
                id: state.id.clone(),
                kind: kind.name(),
                index: i,
                path: hook.path().clone(),
                source,
            };
            tracing::warn!("{}; the remaining hooks still run", crate::error::chain(&e));
            failures.push(e);
        }
    }
    failures
}

/// Rewrite the prestart and createRuntime hooks of a (lent) config.json so each runs through
/// `ngram-ids __oci-hook --bundle <caller's bundle> -- <path> <arg0> <args...>`, which puts the
/// caller's bundle into the state on the hook's stdin. libcontainer starts these hooks from the
/// `create` process itself, so `/proc/self/exe` is this very binary (the sealed copy).
/// createContainer and startContainer hooks run inside the container and are left as they are.
pub fn wrap(config: &mut serde_json::Value, caller_bundle: &Path) {
    use serde_json::Value;
    let bundle = caller_bundle.to_string_lossy().into_owned();
    for kind in ["prestart", "createRuntime"] {
        let Some(Value::Array(hooks)) = config.pointer_mut(&format!("/hooks/{kind}")) else {
            continue;
        };
        for hook in hooks.iter_mut() {
            let Some(path) = hook.get("path").and_then(Value::as_str).map(str::to_owned) else {
                continue;
            };
            let args: Vec<Value> = match hook.get("args").and_then(Value::as_array) {
                Some(a) if !a.is_empty() => a.clone(),
                _ => vec![Value::String(path.clone())],
            };
            let mut wrapped = vec![
                Value::from("ngram-ids"),
                Value::from(WRAPPER_COMMAND),
                Value::from("--bundle"),
                Value::from(bundle.clone()),
                Value::from("--"),
                Value::from(path),
            ];
            wrapped.extend(args);
            hook["path"] = Value::from("/proc/self/exe");
            hook["args"] = Value::Array(wrapped);
        }
    }
}

/// The hidden `__oci-hook` subcommand: read the state on stdin, put `bundle` into it, run
/// `path` with `argv` (`argv[0]` as its arg0) and the state on its stdin; the hook's exit code
/// is ours (128 + the signal if it was killed). The hook dies with this process (libcontainer
/// kills the wrapper when a hook's timeout expires).
pub fn run_wrapped(bundle: &Path, path: &Path, argv: &[OsString]) -> Result<i32, HookError> {
    let mut input = Vec::new();
    std::io::stdin()
        .read_to_end(&mut input)
        .map_err(HookError::Stdin)?;
    let mut state: serde_json::Value = serde_json::from_slice(&input).map_err(HookError::State)?;
    state["bundle"] = serde_json::Value::from(bundle.to_string_lossy().into_owned());
    let state = serde_json::to_vec(&state).map_err(HookError::State)?;

    let mut cmd = Command::new(path);
    if let Some((arg0, rest)) = argv.split_first() {
        cmd.arg0(arg0).args(rest);
    }
    cmd.stdin(Stdio::piped());
    crate::sys::die_with_parent(&mut cmd);
    let spawn = |source| HookError::Spawn {
        path: path.to_owned(),
        source,
    };
    let mut child = cmd.spawn().map_err(spawn)?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its stdin closes the pipe: not an error (libcontainer's rule).
        match stdin.write_all(&state) {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(spawn(e));
            }
            _ => {}
        }
    }
    let status = child.wait().map_err(spawn)?;
    use std::os::unix::process::ExitStatusExt;
    Ok(status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn wrap_keeps_arg0_and_args_and_names_the_caller_bundle() {
        let mut config = json!({"hooks": {
            "prestart": [{"path": "/proc/1/exe", "args": ["libnetwork-setkey", "-exec-root=/x", "id"],
                          "timeout": 5}],
            "createRuntime": [{"path": "/bin/true"}],
            "poststart": [{"path": "/bin/false"}],
            "startContainer": [{"path": "/bin/true"}]
        }});
        wrap(&mut config, Path::new("/b/1"));
        assert_eq!(
            config["hooks"]["prestart"][0],
            json!({"path": "/proc/self/exe", "timeout": 5, "args": [
                "ngram-ids", "__oci-hook", "--bundle", "/b/1", "--", "/proc/1/exe",
                "libnetwork-setkey", "-exec-root=/x", "id"]})
        );
        assert_eq!(
            config["hooks"]["createRuntime"][0]["args"],
            json!([
                "ngram-ids",
                "__oci-hook",
                "--bundle",
                "/b/1",
                "--",
                "/bin/true",
                "/bin/true"
            ])
        );
        assert_eq!(
            config["hooks"]["poststart"][0],
            json!({"path": "/bin/false"})
        );
        assert_eq!(
            config["hooks"]["startContainer"][0],
            json!({"path": "/bin/true"})
        );
    }

    #[test]
    fn caller_bundle_is_read_from_a_lent_bundle_only() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(caller_bundle(d.path()), d.path());
        std::fs::write(d.path().join(CALLER_BUNDLE_FILE), "/srv/bundle with space").unwrap();
        assert_eq!(caller_bundle(d.path()), Path::new("/srv/bundle with space"));
    }

    #[test]
    fn post_hooks_are_taken_out_and_put_back() {
        let d = tempfile::tempdir().unwrap();
        let spec: oci_spec::runtime::Spec = serde_json::from_value(json!({
            "ociVersion": "1.0.2", "root": {"path": "rootfs"},
            "hooks": {"poststart": [{"path": "/bin/false"}, {"path": "/bin/true"}],
                      "poststop": [{"path": "/bin/true"}]},
            "linux": {}
        }))
        .unwrap();
        YoukiConfig::from_spec(&spec, "c1")
            .unwrap()
            .save(d.path())
            .unwrap();
        let taken = take(d.path(), PostHooks::Poststart).unwrap();
        assert_eq!(taken.len(), 2);
        assert!(take(d.path(), PostHooks::Poststart).unwrap().is_empty());
        assert_eq!(take(d.path(), PostHooks::Poststop).unwrap().len(), 1);
        put_back(d.path(), PostHooks::Poststart, taken);
        assert_eq!(take(d.path(), PostHooks::Poststart).unwrap().len(), 2);
    }

    #[test]
    fn every_post_hook_runs_after_a_failing_one() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("out");
        let hook = |args: &[&str]| -> Hook {
            serde_json::from_value(json!({"path": "/bin/sh", "args": args})).unwrap()
        };
        let hooks = vec![
            hook(&["sh", "-c", "exit 3"]),
            hook(&["sh", "-c", &format!("cat > {}", out.display())]),
        ];
        let lent = d.path().join("lent");
        std::fs::create_dir(&lent).unwrap();
        std::fs::write(lent.join(CALLER_BUNDLE_FILE), "/caller/bundle").unwrap();
        let state = State::new(
            "c1",
            libcontainer::container::ContainerStatus::Stopped,
            None,
            lent,
        );
        let failures = run_each(PostHooks::Poststop, &hooks, &state, None);
        assert_eq!(failures.len(), 1, "{failures:?}");
        let msg = crate::error::chain(&failures[0]);
        assert!(msg.contains("poststop hook 0 (/bin/sh)"), "{msg}");
        let seen: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
        assert_eq!(seen["bundle"], "/caller/bundle");
        assert_eq!(seen["id"], "c1");
        assert_eq!(seen["status"], "stopped");
    }
}
