//! A profile's argument classes as an AppArmor profile (issue 16, `profile export-apparmor`):
//! a path policy for users who want the kernel to hold the directories, programs and
//! namespace calls the container used in training.
//!
//! AppArmor confines the whole container, so the classes of every program and phase are
//! joined: what any program did is allowed to all (the per-program, per-phase judgement stays
//! ngram-ids' own). A directory class becomes `DIR/ r` (listing it) and `DIR/* PERMS` (its
//! files), and a deep one (`DIR/**`) also `DIR/*/** PERMS` for the accesses seen below it
//! (decision 48: its own files keep their own); read is `rm` (the loader maps libraries it
//! reads), write `w`; the programs run become `PATH mrix`; address families `network FAMILY`;
//! mounts are allowed only when training saw one. Capabilities, signals and Unix sockets are
//! left to Docker (`capability`, `signal`, `unix` allowed). The output is deterministic and
//! sorted, for review and diffing.

use std::collections::{BTreeMap, BTreeSet};

use crate::args::{credential_file, dir_of, Access, CredentialGroup, Dest};
use crate::profile::ProfileMeta;

/// Why a profile cannot be exported.
#[derive(Debug, thiserror::Error)]
pub enum AppArmorError {
    #[error(
        "profile {key:?} has no argument classes (trained with --arguments off, or before \
         ngram-ids learned them): train it again to export a path policy"
    )]
    NoClasses { key: String },
}

/// A path for an AppArmor rule: globbing characters escaped, quoted when it holds
/// whitespace.
fn quote(path: &str) -> String {
    let mut out = String::with_capacity(path.len() + 2);
    for c in path.chars() {
        if matches!(
            c,
            '*' | '?' | '[' | ']' | '{' | '}' | '^' | '"' | '\\' | ',' | '@'
        ) {
            out.push('\\');
        }
        out.push(c);
    }
    if out.chars().any(char::is_whitespace) {
        format!("\"{out}\"")
    } else {
        out
    }
}

/// The AppArmor permissions of a set of [`Access`] bits.
fn perms(bits: u8) -> String {
    let mut p = String::new();
    if bits & Access::Read.bit() != 0 || bits & Access::Exec.bit() != 0 {
        p.push_str("rm");
    }
    if bits & (Access::Write.bit() | Access::Create.bit()) != 0 {
        p.push('w');
    }
    p
}

/// The AppArmor profile `ngram-ids-NAME` of `meta`'s argument classes and programs.
pub fn apparmor_profile(meta: &ProfileMeta) -> Result<String, AppArmorError> {
    let args = meta.args.as_ref().ok_or_else(|| AppArmorError::NoClasses {
        key: meta.key.clone(),
    })?;
    // Directories, joined over programs and phases: access bits in the directory itself,
    // and below it when deep (decision 48).
    let mut dirs: BTreeMap<&str, (u8, u8)> = BTreeMap::new();
    let mut families = BTreeSet::new();
    let mut mounts = false;
    for p in args.programs.values() {
        // A lookup of a missing name needs no rule: it fails with ENOENT before AppArmor's
        // check (decision 120).
        let probe = Access::Probe.bit();
        for (dir, c) in &p.dirs {
            let (here, below) = (c.access & !probe, c.below_access() & !probe);
            if here | below == 0 {
                continue;
            }
            let e = dirs.entry(dir.as_str()).or_default();
            e.0 |= here;
            e.1 |= below;
        }
        for d in p.dests.keys() {
            families.insert(match d {
                Dest::Inet { .. } => "inet",
                Dest::Inet6 { .. } => "inet6",
                Dest::Unix { .. } => "unix",
            });
        }
        mounts |= p
            .privileged
            .keys()
            .any(|c| c.starts_with("mount ") || c.starts_with("umount"));
    }
    let mut out = String::new();
    let name = format!("ngram-ids-{}", meta.name);
    out.push_str(&format!(
        "# AppArmor profile of ngram-ids profile {:?} (image key {:?}): the directories, \
         programs,\n# address families and mounts its training saw, joined over programs. A \
         starting point\n# for review, not a complete policy. Load: apparmor_parser -r FILE; \
         use: docker run\n# --security-opt apparmor={name} ...\n",
        meta.name, meta.key
    ));
    out.push_str("#include <tunables/global>\n\n");
    out.push_str(&format!(
        "profile {name} flags=(attach_disconnected,mediate_deleted) {{\n"
    ));
    out.push_str("  #include <abstractions/base>\n\n");
    out.push_str("  # Left to Docker: capabilities, signals, Unix sockets.\n");
    out.push_str("  capability,\n  signal,\n  unix,\n\n");
    for f in &families {
        if *f != "unix" {
            out.push_str(&format!("  network {f},\n"));
        }
    }
    if mounts {
        out.push_str("  mount,\n  umount,\n");
    } else {
        out.push_str("  deny mount,\n  deny umount,\n  deny pivot_root,\n");
    }
    out.push('\n');
    // A directory under a deep one with the same accesses or more below is covered by its
    // `/*/**`.
    let under_deep = |dir: &str, bits: u8| {
        let mut d = dir;
        while d != "/" {
            d = dir_of(d);
            if dirs.get(d).is_some_and(|e| e.1 & bits == bits) {
                return true;
            }
        }
        false
    };
    for (dir, (bits, below)) in &dirs {
        let p = perms(*bits);
        if (p.is_empty() && *below == 0) || under_deep(dir, *bits | *below) {
            continue;
        }
        // A per-process procfs template (`/proc/N/stat`): the entry of any process.
        if dir.starts_with("/proc/N/") || *dir == "/proc/N" {
            let rule: Vec<String> = dir
                .split('/')
                .map(|c| {
                    if c == "N" {
                        "@{pid}".to_owned()
                    } else {
                        quote(c)
                    }
                })
                .collect();
            out.push_str(&format!("  {} {p},\n", rule.join("/")));
            continue;
        }
        // A credential file (decision 119): that file only.
        if credential_file(dir) {
            if !p.is_empty() {
                out.push_str(&format!("  {} {p},\n", quote(dir)));
            }
            continue;
        }
        let base = if *dir == "/" {
            String::new()
        } else {
            quote(dir)
        };
        if !p.is_empty() {
            out.push_str(&format!("  {base}/ r,\n  {base}/* {p},\n"));
        }
        if *below != 0 {
            out.push_str(&format!("  {base}/*/** {},\n", perms(*below)));
        }
    }
    out.push_str(&credential_denials(&dirs));
    if let Some(programs) = &meta.programs {
        out.push('\n');
        for exe in programs.keys().filter(|e| e.starts_with('/')) {
            out.push_str(&format!("  {} mrix,\n", quote(exe)));
        }
    }
    out.push_str("}\n");
    Ok(out)
}

/// `deny` rules for the credential files no program touched in training (decision 119): a
/// directory rule such as `/etc/* rm` would otherwise allow `/etc/shadow` as well, which
/// ngram-ids itself judges by the file. A group (a credential directory, users' `~/.ssh`, the
/// SSH host keys) of which training touched any file is left to the learned rules.
fn credential_denials(dirs: &BTreeMap<&str, (u8, u8)>) -> String {
    let learned: Vec<CredentialGroup> =
        dirs.keys().filter_map(|k| CredentialGroup::of(k)).collect();
    let rules: String = CredentialGroup::all()
        .filter(|g| !learned.contains(g))
        .map(|g| format!("  deny {} rw,\n", g.glob()))
        .collect();
    format!("\n  # Credential files training never touched (decision 119).\n{rules}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::{AddrClass, ArgClasses};

    fn meta() -> ProfileMeta {
        let mut a = ArgClasses::learning();
        let py = a.of_mut("/usr/bin/python3.11", false);
        py.learn_path("/srv/www/index.html", Access::Read);
        py.learn_path("/srv/www/uploads/a b.txt", Access::Write);
        py.learn_path("/proc/self/stat", Access::Read);
        py.learn_path("/etc/hostname", Access::Read);
        py.learn_path("/etc/ssl/private/web.key", Access::Read);
        // Lookups of missing names (decision 120), one of them of a credential file.
        py.learn_path("/srv/lookups/package.json", Access::Probe);
        py.learn_path("/root/.ssh/id_rsa", Access::Probe);
        for i in 0..12 {
            py.learn_path(&format!("/srv/modules/m{i}/x.py"), Access::Probe);
        }
        py.learn_dest(Dest::Inet {
            class: AddrClass::Loopback,
            port: 80,
        });
        for i in 0..12 {
            py.learn_path(&format!("/srv/data/u{i}/f"), Access::Read);
        }
        a.of_mut("/usr/bin/python3.11", true)
            .learn_path("/usr/lib/python3.11/os.py", Access::Read);
        let counts = crate::ngram::NgramCounts::new(3, crate::syscalls::Arch::X86_64).unwrap();
        let mut m = crate::profile::Profile::new("sha256:abc", "web", counts).meta;
        m.args = Some(a);
        m.programs = Some(
            [("/usr/bin/python3.11".to_owned(), 3)]
                .into_iter()
                .collect(),
        );
        m
    }

    #[test]
    fn classes_become_path_rules() {
        let out = apparmor_profile(&meta()).unwrap();
        for want in [
            "profile ngram-ids-web flags=(attach_disconnected,mediate_deleted) {",
            "  /srv/www/ r,\n  /srv/www/* rm,\n",
            "  /srv/www/uploads/* w,\n",
            "  /srv/data/ r,\n  /srv/data/* rm,\n  /srv/data/*/** rm,\n",
            "  /usr/lib/python3.11/* rm,\n",
            "  /usr/bin/python3.11 mrix,\n",
            "  network inet,\n",
            "  /proc/@{pid}/stat rm,\n",
            "  deny mount,\n",
            // Credential files: the one learned by itself, the others denied (decision 119).
            "  /etc/ssl/private/web.key rm,\n",
            "  /etc/* rm,\n",
            "  deny /etc/shadow rw,\n",
            "  deny /etc/sudoers.d/** rw,\n",
            "  deny /home/*/.ssh/** rw,\n",
            "  deny /etc/ssh/ssh_host_*_key rw,\n",
            "  deny /root/.ssh/** rw,\n",
        ] {
            assert!(out.contains(want), "missing {want:?} in\n{out}");
        }
        assert!(
            !out.contains("/srv/data/u1/"),
            "a deep directory lists its children:\n{out}"
        );
        assert!(
            !out.contains("deny /etc/ssl/private/"),
            "a learned credential directory is denied:\n{out}"
        );
        assert!(
            !out.contains("/srv/lookups") && !out.contains("/srv/modules"),
            "a directory only looked up has a rule:\n{out}"
        );
        assert!(out.ends_with("}\n"));
        assert_eq!(out, apparmor_profile(&meta()).unwrap(), "deterministic");
    }

    #[test]
    fn paths_are_escaped_and_a_profile_without_classes_is_refused() {
        assert_eq!(quote("/srv/a*b"), "/srv/a\\*b");
        assert_eq!(quote("/srv/x y"), "\"/srv/x y\"");
        assert_eq!(quote("/srv/{a,b}"), "/srv/\\{a\\,b\\}");
        let mut m = meta();
        m.args = None;
        let e = apparmor_profile(&m).unwrap_err().to_string();
        assert!(e.contains("has no argument classes"), "{e}");
        assert!(e.contains("train it again"), "{e}");
    }
}
