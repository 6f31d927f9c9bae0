//! Export of a profile as a Docker/OCI seccomp JSON allowlist.
