//! The runc-compatible OCI runtime: command-line types and the lifecycle commands on libcontainer.
