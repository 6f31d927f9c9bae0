//! One function per runc subcommand, over libcontainer. [`run`] dispatches.

mod create;
mod exec;
mod features;
mod lifecycle;
pub mod supervisor_exit;
mod update;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

pub use create::{
    create, is_plain_id, with_default_profile, CreateHook, Created, EarlyAttach, NoHook,
};
pub use exec::{add_sys_admin, exec};
pub use features::features_json;
use libcgroups::common::{AnyCgroupManager, CgroupConfig};
use libcontainer::container::Container;
pub use lifecycle::{delete, filter_ps, kill, pause, ps, resume, start, state, state_json};
pub use update::{resources_from_flags, update};

use crate::cli::{GlobalOpts, RuntimeCmd};
use crate::error::RuntimeError;

/// Run one runtime subcommand; returns the process exit code (0, or the exit status of a
/// non-detached `exec`).
pub fn run(
    global: &GlobalOpts,
    cmd: RuntimeCmd,
    hook: &dyn CreateHook,
) -> Result<i32, RuntimeError> {
    match cmd {
        RuntimeCmd::Create(a) => create(global, &a, hook).map(|_| 0),
        RuntimeCmd::Start(a) => start(global, &a.container_id).map(|_| 0),
        RuntimeCmd::State(a) => {
            let s = state(global, &a.container_id)?;
            print_out(&format!("{}\n", serde_json::to_string_pretty(&s)?))?;
            Ok(0)
        }
        RuntimeCmd::Kill(a) => kill(global, &a.container_id, &a.signal, a.all).map(|_| 0),
        RuntimeCmd::Delete(a) => delete(global, &a.container_id, a.force).map(|_| 0),
        RuntimeCmd::Exec(a) => exec(global, &a),
        RuntimeCmd::Ps(a) => {
            let out = ps(global, &a.container_id, &a.format, &a.ps_options)?;
            print_out(&out)?;
            Ok(0)
        }
        RuntimeCmd::Pause(a) => pause(global, &a.container_id).map(|_| 0),
        RuntimeCmd::Resume(a) => resume(global, &a.container_id).map(|_| 0),
        RuntimeCmd::Update(a) => update(global, &a).map(|_| 0),
        RuntimeCmd::Features(_) => {
            print_out(&format!(
                "{}\n",
                serde_json::to_string_pretty(&features_json())?
            ))?;
            Ok(0)
        }
        RuntimeCmd::OciHook(a) => Ok(crate::hooks::run_wrapped(&a.bundle, &a.path, &a.argv)?),
    }
}

fn print_out(s: &str) -> Result<(), RuntimeError> {
    std::io::stdout()
        .write_all(s.as_bytes())
        .map_err(|source| RuntimeError::Io {
            path: PathBuf::from("/dev/stdout"),
            source,
        })
}

/// The state directory of one container.
pub(crate) fn container_dir(global: &GlobalOpts, id: &str) -> PathBuf {
    global.root_dir().join(id)
}

/// Load a container's state, with runc's "does not exist" error.
pub(crate) fn load(global: &GlobalOpts, id: &str) -> Result<Container, RuntimeError> {
    let dir = container_dir(global, id);
    if !dir.join("state.json").exists() {
        return Err(RuntimeError::NotExist { id: id.to_owned() });
    }
    Container::load(dir).map_err(|e| RuntimeError::lib(id, "loading state", e))
}

/// The cgroup manager of a loaded container.
pub(crate) fn cgroup_manager(c: &Container) -> Result<AnyCgroupManager, RuntimeError> {
    let id = c.id().to_owned();
    let cfg = c
        .spec()
        .map_err(|e| RuntimeError::lib(&id, "loading config", e))?;
    libcgroups::common::create_cgroup_manager(CgroupConfig {
        cgroup_path: cfg.cgroup_path,
        systemd_cgroup: c.systemd(),
        container_name: id.clone(),
    })
    .map_err(|e| RuntimeError::Cgroup {
        id,
        message: crate::error::chain(&e),
    })
}

/// Create `dir` if needed and make it root-only (0700), as runc does for its state.
pub(crate) fn ensure_private_dir(dir: &Path) -> Result<(), RuntimeError> {
    let io = |source| RuntimeError::Io {
        path: dir.to_owned(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io)
}
