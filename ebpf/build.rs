//! Builds the kernel program: `vmlinux.h` from the running kernel's BTF (bpftool), then
//! `src/bpf/ngram.bpf.c` (the counter, and the alert program of `src/bpf/alert.bpf.h`) with clang (`-target bpf -O2 -g`, CO-RE) and its Rust skeleton, both
//! into OUT_DIR.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

const SRC: &str = "src/bpf/ngram.bpf.c";
const HEADER: &str = "src/bpf/ngram.h";
const ALERT: &str = "src/bpf/alert.bpf.h";
const ENFORCE: &str = "src/bpf/enforce.bpf.h";
const BTF: &str = "/sys/kernel/btf/vmlinux";

fn main() -> ExitCode {
    match build() {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("error: ngram-ebpf: {msg}");
            ExitCode::FAILURE
        }
    }
}

fn build() -> Result<(), String> {
    println!("cargo:rerun-if-changed={SRC}");
    println!("cargo:rerun-if-changed={HEADER}");
    println!("cargo:rerun-if-changed={ALERT}");
    println!("cargo:rerun-if-changed={ENFORCE}");
    println!("cargo:rerun-if-changed={BTF}");
    let out = PathBuf::from(env::var_os("OUT_DIR").ok_or("OUT_DIR is not set")?);
    write_vmlinux_h(&out.join("vmlinux.h"))?;
    let skel = out.join("ngram.skel.rs");
    let clang = which("clang")
        .ok_or("clang not found: install it (apt-get install clang, or scripts/setup-host.sh)")?;
    libbpf_cargo::SkeletonBuilder::new()
        .source(SRC)
        .clang(clang)
        .clang_args([
            "-I".as_ref(),
            out.as_os_str(),
            "-Wall".as_ref(),
            "-Werror".as_ref(),
        ])
        .build_and_generate(&skel)
        .map_err(|e| format!("cannot compile {SRC}: {e:#}"))
}

/// `bpftool btf dump file /sys/kernel/btf/vmlinux format c > vmlinux.h`.
fn write_vmlinux_h(dst: &Path) -> Result<(), String> {
    if !Path::new(BTF).exists() {
        return Err(format!(
            "the kernel has no BTF at {BTF}: the eBPF engine needs a kernel built with CONFIG_DEBUG_INFO_BTF"
        ));
    }
    let bpftool = which("bpftool").ok_or(
        "bpftool not found: install it (apt-get install bpftool, or scripts/setup-host.sh)",
    )?;
    let output = Command::new(&bpftool)
        .args(["btf", "dump", "file", BTF, "format", "c"])
        .output()
        .map_err(|e| format!("cannot run {}: {e}", bpftool.display()))?;
    if !output.status.success() {
        return Err(format!(
            "{} btf dump file {BTF} failed ({}): {}",
            bpftool.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    fs::write(dst, &output.stdout).map_err(|e| format!("cannot write {}: {e}", dst.display()))
}

/// A program on PATH, or in /usr/sbin and /sbin (bpftool's home, not on every user's PATH).
fn which(name: &str) -> Option<PathBuf> {
    let path = env::var_os("PATH").unwrap_or_default();
    env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}
