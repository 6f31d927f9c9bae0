//! The profile store: sled under `--db`, versioned schema, atomic merges across processes.
