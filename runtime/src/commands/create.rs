//! `create`: build the container with libcontainer, close the gaps libcontainer leaves
//! (disableOOMKiller, state permissions), then call the [`CreateHook`] before returning, so
//! that a supervisor can attach between creation and `start`.

use std::path::{Path, PathBuf};

use libcgroups::common::{CgroupManager, ControllerOpt};
use libcontainer::container::builder::ContainerBuilder;
use libcontainer::syscall::syscall::SyscallType;
use ngram_supervisor::identity::Identity;
use ngram_supervisor::supervise::{EbpfEnforce, TracerKind};
use oci_spec::runtime::Spec;

use super::{cgroup_manager, ensure_private_dir};
use crate::cli::GlobalOpts;
use crate::error::RuntimeError;
use crate::executor::NgramExecutor;

/// What `create` made: enough for a supervisor to find and watch the container.
#[derive(Debug, Clone)]
pub struct Created {
    /// Container id.
    pub id: String,
    /// Host pid of the container's init process (waiting for `start`).
    pub pid: i32,
    /// Absolute bundle path.
    pub bundle: PathBuf,
    /// The container's state directory under `--root`.
    pub state_dir: PathBuf,
    /// The parsed config.json.
    pub spec: Spec,
    /// The global flags of this invocation (for `--root`, `--log`, …).
    pub global: GlobalOpts,
    /// Who the container is (Docker's config.v2.json, else OCI annotations), read once here;
    /// `None` when it could not be read (the hook reads it again to report why).
    pub identity: Option<Identity>,
    /// The tracer the container's executor waits for (`None`: untraced). The supervisor must
    /// use this one.
    pub tracer: Option<TracerKind>,
    /// Why `--tracer=auto` chose `tracer` (`None`: named by a label or the flag).
    pub tracer_why: Option<String>,
    /// Enforce with the eBPF tracer: `Lsm` or `Hybrid` (the executor loads the hybrid's
    /// filter); `Auto` for every other container.
    pub ebpf_enforce: EbpfEnforce,
}

/// Called by `create` after the container exists and before `create` returns (so before
/// `start`). An error makes `create` fail and the container is deleted again.
pub trait CreateHook {
    /// Whether the containers get the tracing filter (then this hook must start the
    /// supervisor that answers it, or the workload waits forever in its first call).
    fn traces(&self) -> bool {
        true
    }

    /// `--tracer=auto`: the tracer of container `id` (`identity`: who it is, when known), and
    /// why. Called before the container is built (its executor depends on it).
    fn auto_tracer(
        &self,
        _id: &str,
        _identity: Option<&Identity>,
        _global: &GlobalOpts,
    ) -> Result<ngram_supervisor::auto::AutoChoice, Box<dyn std::error::Error + Send + Sync>> {
        Ok(ngram_supervisor::auto::AutoChoice {
            tracer: TracerKind::Notify,
            why: "auto: notify (no supervisor hook)".to_owned(),
        })
    }

    /// With the eBPF tracer: how container `id` is enforced, `Lsm` or `Hybrid` (decision 72);
    /// `Auto` when it is not in enforce mode. Called before the container is built (the
    /// executor loads the hybrid's filter).
    fn ebpf_enforce(
        &self,
        _id: &str,
        _identity: Option<&Identity>,
        _global: &GlobalOpts,
    ) -> Result<EbpfEnforce, Box<dyn std::error::Error + Send + Sync>> {
        Ok(EbpfEnforce::Auto)
    }

    /// Start attaching before the container is built, so that this work runs beside
    /// libcontainer's (decision 106). `pre` is the container as `create` is about to build it:
    /// its `pid` is 0. What this returns attaches to the built container instead of
    /// [`CreateHook::after_create`]; dropped unused (the build failed), it undoes what it
    /// started. `None`: `after_create` attaches.
    fn before_build(
        &self,
        _pre: &Created,
    ) -> Result<Option<Box<dyn EarlyAttach>>, Box<dyn std::error::Error + Send + Sync>> {
        Ok(None)
    }

    /// Attach to the freshly created container.
    fn after_create(
        &self,
        created: &Created,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>>;
}

/// What [`CreateHook::before_build`] started: it finishes attaching once the container is
/// built (an error fails `create`), and undoes what it started when dropped unused.
pub trait EarlyAttach {
    /// Attach to the built container (`created.pid` is its init).
    fn attach(
        self: Box<Self>,
        created: &Created,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>>;
}

/// Is `id` a plain name (not empty, `.` or `..`, no `/` or NUL)? libcontainer checks the id
/// when it builds the container; work started before that uses it in paths only when it is.
pub fn is_plain_id(id: &str) -> bool {
    !id.is_empty() && id != "." && id != ".." && !id.contains(['/', '\0'])
}

/// A hook that does nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoHook;

impl CreateHook for NoHook {
    fn traces(&self) -> bool {
        false
    }

    fn after_create(
        &self,
        _created: &Created,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        Ok(())
    }
}

/// `ngram-ids create`.
pub fn create(
    global: &GlobalOpts,
    args: &liboci_cli::Create,
    hook: &dyn CreateHook,
) -> Result<Created, RuntimeError> {
    let id = args.container_id.clone();
    let lib = |op| move |e| RuntimeError::lib(&args.container_id, op, e);
    let bundle = std::fs::canonicalize(&args.bundle).map_err(|source| RuntimeError::Io {
        path: args.bundle.clone(),
        source,
    })?;
    let spec = crate::bundle::load_spec(&bundle)?;
    let root = global.root_dir();
    ensure_private_dir(&root)?;

    // The tracing filter goes in right before execve, after libcontainer dropped the
    // capabilities; without CAP_SYS_ADMIN the kernel would demand no_new_privs. Lend the
    // capability to the init process through a private copy of the bundle's config.json.
    let identity = hook
        .traces()
        .then(|| ngram_supervisor::identity::identify(&id, &bundle, &spec).ok())
        .flatten()
        .map(|i| with_default_profile(i, global.default_profile.as_deref()));
    let traces = if hook.traces() {
        let labels = match &identity {
            Some(i) => i.labels().map_err(|e| RuntimeError::Hook {
                id: id.clone(),
                message: e.to_string(),
            })?,
            None => Default::default(),
        };
        // The tracer of a container: its label or annotation, else the runtime's, else
        // (auto) the hook's choice for this container.
        match labels.tracer.or(global.tracer.kind()) {
            Some(kind) => Some((kind, None)),
            None => {
                let choice = hook
                    .auto_tracer(&id, identity.as_ref(), global)
                    .map_err(|e| RuntimeError::Hook {
                        id: id.clone(),
                        message: e.to_string(),
                    })?;
                Some((choice.tracer, Some(choice.why)))
            }
        }
    } else {
        None
    };
    let (traces, tracer_why) = match traces {
        Some((kind, why)) => (Some(kind), why),
        None => (None, None),
    };
    let ebpf_enforce = if traces == Some(TracerKind::Ebpf) {
        hook.ebpf_enforce(&id, identity.as_ref(), global)
            .map_err(|e| RuntimeError::Hook {
                id: id.clone(),
                message: e.to_string(),
            })?
    } else {
        EbpfEnforce::Auto
    };
    let lent = if traces.is_some() {
        lend_bundle(&root, &id, &bundle)?
    } else {
        None
    };
    let state_dir = root.join(&id);
    // The supervisor starts now and loads the profile and its kernel programs while
    // libcontainer builds the container (decision 106).
    // What the hooks are told; the pid is known once libcontainer has built the container.
    let mut created = Created {
        id: id.clone(),
        pid: 0,
        bundle: bundle.clone(),
        state_dir: state_dir.clone(),
        spec: spec.clone(),
        global: global.clone(),
        identity: identity.clone(),
        tracer: traces,
        tracer_why: tracer_why.clone(),
        ebpf_enforce,
    };
    let early = match traces {
        Some(_) if is_plain_id(&id) => hook.before_build(&created).map_err(|e| {
            remove_lent_bundle(&root, &id);
            RuntimeError::Hook {
                id: id.clone(),
                message: e.to_string(),
            }
        })?,
        _ => None,
    };
    let init_bundle = lent.clone().unwrap_or_else(|| bundle.clone());
    let mut container = ContainerBuilder::new(id.clone(), SyscallType::default())
        .with_executor(NgramExecutor::for_init(
            traces,
            lent.is_some(),
            ebpf_enforce == EbpfEnforce::Hybrid,
        ))
        .with_pid_file(args.pid_file.as_ref())
        .map_err(lib("create"))?
        .with_console_socket(args.console_socket.as_ref())
        .with_root_path(&root)
        .map_err(lib("create"))?
        .with_preserved_fds(args.preserve_fds)
        .validate_id()
        .map_err(lib("create"))?
        .as_init(&init_bundle)
        .with_systemd(global.systemd_cgroup)
        .with_detach(true)
        .with_no_pivot(args.no_pivot)
        .build()
        .map_err(|e| {
            remove_lent_bundle(&root, &id);
            RuntimeError::lib_hint(&id, "create", e, crate::diagnose::create_hint(&spec))
        })?;

    let created = (|| {
        ensure_private_dir(&state_dir)?;
        apply_disable_oom_killer(&container, &spec)?;
        let pid = container
            .pid()
            .map(|p| p.as_raw())
            .ok_or_else(|| RuntimeError::NotRunning { id: id.clone() })?;
        crate::mounts::harden_cgroup_mounts(pid, &spec)?;
        if !global.systemd_cgroup {
            if let Some(path) = crate::hybrid::cgroupfs_path(&spec) {
                crate::hybrid::join(pid, &path)?;
            }
        }
        created.pid = pid;
        match early {
            Some(early) => early.attach(&created),
            None => hook.after_create(&created),
        }
        .map_err(|e| RuntimeError::Hook {
            id: id.clone(),
            message: e.to_string(),
        })?;
        Ok(created)
    })();
    if created.is_err() {
        if let Err(e) = container.delete(true) {
            tracing::warn!("cleaning up container {id} after a failed create: {e}");
        }
        if !global.systemd_cgroup {
            if let Some(path) = crate::hybrid::cgroupfs_path(&spec) {
                crate::hybrid::remove(&path);
            }
        }
        remove_lent_bundle(&root, &id);
    }
    created
}

/// `--default-profile NAME`: the profile label of a container that has no image (ID or
/// annotated reference) and no profile label (checked like any label by the supervisor's plan).
pub fn with_default_profile(mut identity: Identity, default: Option<&str>) -> Identity {
    if let Some(name) = default.filter(|_| !identity.has_image()) {
        identity
            .labels
            .entry(ngram_supervisor::identity::PROFILE_LABEL.to_owned())
            .or_insert_with(|| name.to_owned());
    }
    identity
}

/// Where the private bundle copies live: `<root>/.lent-bundles/<id>` (0700, root's).
fn lent_bundle_dir(root: &Path, id: &str) -> PathBuf {
    root.join(".lent-bundles").join(id)
}

/// Remove the private bundle copy of container `id`, if any (by `delete`).
pub fn remove_lent_bundle(root: &Path, id: &str) {
    let dir = lent_bundle_dir(root, id);
    if dir.exists() {
        if let Err(e) = std::fs::remove_dir_all(&dir) {
            tracing::warn!("removing {}: {e}", dir.display());
        }
    }
}

/// Copy `bundle`'s config.json into a private bundle with CAP_SYS_ADMIN added to the init
/// process's effective and permitted sets (never the bounding set, so it cannot survive
/// `execve`; the executor drops it right after loading the tracing filter) and `root.path`
/// made absolute, its prestart and createRuntime hooks wrapped ([`crate::hooks::wrap`]) and the
/// caller's bundle path recorded beside it. `None` when the process has the capability anyway.
fn lend_bundle(root: &Path, id: &str, bundle: &Path) -> Result<Option<PathBuf>, RuntimeError> {
    use std::os::unix::fs::DirBuilderExt;
    let mut v = super::exec::read_json(&bundle.join("config.json"))?;
    let Some(process) = v.get_mut("process") else {
        return Ok(None);
    };
    if !super::add_sys_admin(process) {
        return Ok(None);
    }
    if let Some(path) = v.pointer_mut("/root/path") {
        if let Some(p) = path.as_str().filter(|p| !p.starts_with('/')) {
            *path = serde_json::Value::String(bundle.join(p).to_string_lossy().into_owned());
        }
    }
    let dir = lent_bundle_dir(root, id);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(|source| RuntimeError::Io {
            path: dir.clone(),
            source,
        })?;
    // The state and the hooks name the caller's bundle, not this copy.
    crate::hooks::wrap(&mut v, bundle);
    super::exec::write_private_json(&dir.join("config.json"), &v, false)?;
    let origin = dir.join(crate::hooks::CALLER_BUNDLE_FILE);
    std::fs::write(&origin, bundle.as_os_str().as_encoded_bytes()).map_err(|source| {
        RuntimeError::Io {
            path: origin.clone(),
            source,
        }
    })?;
    Ok(Some(dir))
}

/// libcontainer 0.7 always passes `disable_oom_killer: false` to the cgroup manager; apply the
/// bundle's `linux.resources.memory.disableOOMKiller` again with the real value.
fn apply_disable_oom_killer(
    container: &libcontainer::container::Container,
    spec: &Spec,
) -> Result<(), RuntimeError> {
    let Some(resources) = spec.linux().as_ref().and_then(|l| l.resources().as_ref()) else {
        return Ok(());
    };
    let disable = resources
        .memory()
        .as_ref()
        .and_then(|m| m.disable_oom_killer())
        .unwrap_or(false);
    if !disable {
        return Ok(());
    }
    let manager = cgroup_manager(container)?;
    manager
        .apply(&ControllerOpt {
            resources,
            disable_oom_killer: true,
            oom_score_adj: None,
            freezer_state: None,
        })
        .map_err(|e| RuntimeError::Cgroup {
            id: container.id().to_owned(),
            message: format!("disabling the OOM killer: {}", crate::error::chain(&e)),
        })
}

#[cfg(test)]
mod tests {
    use super::is_plain_id;

    #[test]
    fn only_plain_ids_are_used_in_paths_before_the_build() {
        assert!(is_plain_id("3f2a-c1_web.1"));
        for bad in ["", ".", "..", "../x", "a/b", "a\0b"] {
            assert!(!is_plain_id(bad), "{bad:?}");
        }
    }
}
