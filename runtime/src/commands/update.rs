//! `update`: new resource limits for a running container, from `--resources FILE|-` (what
//! containerd sends) or from runc's individual flags.

use std::io::Read;
use std::path::{Path, PathBuf};

use libcgroups::common::{CgroupManager, ControllerOpt};
use oci_spec::runtime::LinuxResources;
use serde_json::{json, Map, Value};

use super::{cgroup_manager, load};
use crate::cli::GlobalOpts;
use crate::error::RuntimeError;

/// `ngram-ids update`.
pub fn update(global: &GlobalOpts, args: &liboci_cli::Update) -> Result<(), RuntimeError> {
    let id = args.container_id.as_str();
    let c = load(global, id)?;
    let resources = match &args.resources {
        Some(path) => read_resources(path)?,
        None => resources_from_flags(args)?,
    };
    // Keep the bundle's disableOOMKiller: the cgroup manager would otherwise turn it off.
    let disable_oom_killer = crate::bundle::load_spec(c.bundle())
        .ok()
        .and_then(|s| s.linux().clone())
        .and_then(|l| l.resources().clone())
        .and_then(|r| *r.memory())
        .and_then(|m| m.disable_oom_killer())
        .unwrap_or(false);
    cgroup_manager(&c)?
        .apply(&ControllerOpt {
            resources: &resources,
            disable_oom_killer,
            oom_score_adj: None,
            freezer_state: None,
        })
        .map_err(|e| RuntimeError::Cgroup {
            id: id.to_owned(),
            message: crate::error::chain(&e),
        })
}

fn read_resources(path: &Path) -> Result<LinuxResources, RuntimeError> {
    let mut text = String::new();
    let res = if path == Path::new("-") {
        std::io::stdin().read_to_string(&mut text)
    } else {
        std::fs::File::open(path).and_then(|mut f| f.read_to_string(&mut text))
    };
    res.map_err(|source| RuntimeError::Io {
        path: path.to_owned(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|source| RuntimeError::Resources {
        path: path.to_owned(),
        source,
    })
}

/// Resources from runc's individual `update` flags.
pub fn resources_from_flags(args: &liboci_cli::Update) -> Result<LinuxResources, RuntimeError> {
    fn put(m: &mut Map<String, Value>, k: &str, v: Option<Value>) {
        if let Some(v) = v {
            m.insert(k.to_owned(), v);
        }
    }
    let mut memory = Map::new();
    put(&mut memory, "limit", args.memory.map(|v| json!(v)));
    put(
        &mut memory,
        "reservation",
        args.memory_reservation.map(|v| json!(v)),
    );
    put(&mut memory, "swap", args.memory_swap.map(|v| json!(v)));
    let mut cpu = Map::new();
    put(&mut cpu, "shares", args.cpu_share.map(|v| json!(v)));
    put(&mut cpu, "quota", args.cpu_quota.map(|v| json!(v)));
    put(&mut cpu, "period", args.cpu_period.map(|v| json!(v)));
    put(
        &mut cpu,
        "realtimeRuntime",
        args.cpu_rt_runtime.map(|v| json!(v)),
    );
    put(
        &mut cpu,
        "realtimePeriod",
        args.cpu_rt_period.map(|v| json!(v)),
    );
    put(
        &mut cpu,
        "cpus",
        args.cpuset_cpus.clone().map(Value::String),
    );
    put(
        &mut cpu,
        "mems",
        args.cpuset_mems.clone().map(Value::String),
    );
    let mut r = Map::new();
    if !memory.is_empty() {
        r.insert("memory".to_owned(), Value::Object(memory));
    }
    if !cpu.is_empty() {
        r.insert("cpu".to_owned(), Value::Object(cpu));
    }
    put(
        &mut r,
        "pids",
        args.pids_limit.map(|v| json!({ "limit": v })),
    );
    put(
        &mut r,
        "blockIO",
        args.blkio_weight.map(|v| json!({ "weight": v })),
    );
    serde_json::from_value(Value::Object(r)).map_err(|source| RuntimeError::Resources {
        path: PathBuf::from("<flags>"),
        source,
    })
}
