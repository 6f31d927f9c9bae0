//! The runtime's error type: one variant per thing that can go wrong, with the container id,
//! path or pid in it.

use std::path::PathBuf;

/// Errors of the runtime commands.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("container \"{id}\" does not exist")]
    NotExist { id: String },
    #[error("container \"{id}\" is not running")]
    NotRunning { id: String },
    #[error("container \"{id}\": cannot {op} a container that is {status}")]
    WrongStatus {
        id: String,
        op: &'static str,
        status: String,
    },
    #[error("{0}")]
    Bundle(#[from] crate::bundle::BundleError),
    #[error("{0}")]
    Signal(#[from] crate::signal::SignalParseError),
    #[error("ngram-ids {op} failed: {message}")]
    Libcontainer {
        id: String,
        op: &'static str,
        /// The whole source chain of libcontainer's error, joined with ": ".
        message: String,
        #[source]
        source: Box<libcontainer::error::LibcontainerError>,
    },
    #[error("container \"{id}\": cgroup: {message}")]
    Cgroup { id: String, message: String },
    #[error("container \"{id}\": sending signal {signal} to pid {pid}: {source}")]
    Kill {
        id: String,
        signal: i32,
        pid: i32,
        #[source]
        source: nix::Error,
    },
    #[error("container \"{id}\": supervisor: {message}")]
    Supervisor { id: String, message: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("reading resources from {path}: {source}")]
    Resources {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("waiting for pid {pid}: {source}")]
    Wait {
        pid: i32,
        #[source]
        source: nix::Error,
    },
    #[error("running ps: {0}")]
    Ps(#[source] std::io::Error),
    #[error("hook after create of container \"{id}\": {message}")]
    Hook { id: String, message: String },
    #[error("{0}")]
    Json(#[from] serde_json::Error),
    #[error("{0}")]
    Mount(#[from] crate::mounts::MountError),
    #[error("{0}")]
    Hybrid(#[from] crate::hybrid::HybridError),
    #[error(transparent)]
    OciHook(#[from] crate::hooks::HookError),
}

impl RuntimeError {
    /// Wrap a libcontainer error, keeping its whole chain in the message: libcontainer's
    /// top-level texts ("syscall error", "io error") say little on their own.
    pub fn lib(id: &str, op: &'static str, source: libcontainer::error::LibcontainerError) -> Self {
        RuntimeError::Libcontainer {
            id: id.to_owned(),
            op,
            message: runc_wording(&chain(&source)),
            source: Box::new(source),
        }
    }

    /// Like [`RuntimeError::lib`], naming the cause found by a check (`hint`) the way runc
    /// words it, with libcontainer's own chain after it in parentheses.
    pub fn lib_hint(
        id: &str,
        op: &'static str,
        source: libcontainer::error::LibcontainerError,
        hint: Option<String>,
    ) -> Self {
        match hint {
            None => Self::lib(id, op, source),
            Some(hint) => RuntimeError::Libcontainer {
                id: id.to_owned(),
                op,
                message: format!(
                    "unable to start container process: {hint} ({})",
                    chain(&source)
                ),
                source: Box::new(source),
            },
        }
    }

    /// The one-line message for containerd's log: this error and all its sources, each text
    /// once (transparent wrappers repeat their source's text).
    pub fn one_line(&self) -> String {
        let s = match self {
            // Its message already holds the chain.
            RuntimeError::Libcontainer { .. } => self.to_string(),
            other => chain(other),
        };
        s.replace('\n', " ")
    }
}

/// Join an error and its sources with ": ", skipping texts already contained in the result.
pub fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        let t = e.to_string();
        if !t.is_empty() && !out.contains(&t) {
            out.push_str(": ");
            out.push_str(&t);
        }
        cur = e.source();
    }
    out
}

/// libcontainer reports a failed process start as "failed to create container: exec process
/// failed with error error in executing process : exec: ...". Say it as runc does:
/// "unable to start container process: exec: ..." (dockerd matches on the tail).
pub fn runc_wording(chain: &str) -> String {
    match chain.find("exec: \"") {
        Some(i) => format!("unable to start container process: {}", &chain[i..]),
        None => chain.to_owned(),
    }
}
