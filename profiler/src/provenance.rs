//! Where a profile's counts came from: which hosts, how many training runs and calls each
//! gave (issue 13, part 5). Kept in the profile's metadata, so it travels with the profile
//! through `profile merge` and `profile push`/`pull`.
//!
//! Counts trained into a profile on one host are one *origin*, keyed `<host id>/<lineage>`:
//! the lineage is a random id the profile gets on its first training in a store, so two
//! profiles trained on the same host are two origins, and a profile copied elsewhere and trained
//! on there is a third. Merging adds origins; merging a profile whose origin is already in the
//! destination would count those calls twice (they are not told apart in the counts), so it is
//! refused ([`Overlap`]). That is what keeps `merge` an exact sum of distinct trainings.
//!
//! Profiles from before provenance have no origins: their runs and calls are reported as
//! "unrecorded" (the difference between the profile's totals and its origins' sums).

use std::collections::BTreeMap;
use std::io::Read;

use serde::{Deserialize, Serialize};

/// Environment variable naming this host in provenance instead of its machine-id (for hosts
/// cloned with the same `/etc/machine-id`, and for tests).
pub const HOST_ENV: &str = "NGRAM_IDS_HOST";

/// One host's training of one profile lineage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    /// The host's id (a hash of its machine-id, or [`HOST_ENV`]).
    pub host: String,
    /// The host's name when it trained, for people.
    pub hostname: String,
    /// Training runs (trace files or container runs).
    pub runs: u64,
    /// System calls counted.
    pub calls: u64,
    /// Seconds since the Unix epoch of its first and last training.
    pub first: u64,
    pub last: u64,
}

/// The host this process runs on, as provenance names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// Stable id: [`HOST_ENV`] when set, else a hash of `/etc/machine-id` (not the id itself,
    /// which systemd asks applications not to publish), else the hostname.
    pub id: String,
    /// `/proc/sys/kernel/hostname`.
    pub name: String,
}

impl Host {
    /// This host.
    pub fn this() -> Self {
        let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|s| s.trim().to_owned())
            .ok()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "unknown".to_owned());
        if let Some(id) = std::env::var(HOST_ENV)
            .ok()
            .map(|s| sanitize(&s))
            .filter(|s| !s.is_empty())
        {
            return Self { id, name };
        }
        let machine = ["/etc/machine-id", "/var/lib/dbus/machine-id"]
            .iter()
            .find_map(|p| std::fs::read_to_string(p).ok())
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty());
        let id = match machine {
            Some(m) => format!("{:016x}", fnv1a(&format!("ngram-ids host {m}"))),
            None => sanitize(&name),
        };
        Self { id, name }
    }

    /// A host with this id and name (tests, tools).
    pub fn named(id: &str, name: &str) -> Self {
        Self {
            id: sanitize(id),
            name: sanitize(name),
        }
    }
}

/// Letters, digits and `.-_` only, at most 64 of them: an id shown in lists and keys.
fn sanitize(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric() || ".-_".contains(*c))
        .take(64)
        .collect()
}

/// 64-bit FNV-1a: a stable hash that needs no dependency (not a secret, only not the raw id).
fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A new random lineage id (16 hex digits from the kernel's random source; the time and process
/// id if that cannot be read).
pub fn new_lineage() -> String {
    let mut bytes = [0u8; 8];
    let random = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .is_ok();
    if random {
        return format!("{:016x}", u64::from_le_bytes(bytes));
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{:016x}", fnv1a(&format!("{now} {}", std::process::id())))
}

/// A merge would count one origin's calls twice.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("profile {src:?} holds counts of origin {origin} (host {hostname}) that {dst:?} already holds: merging would count them twice; merge profiles of distinct trainings, or replace instead")]
pub struct Overlap {
    pub src: String,
    pub dst: String,
    pub origin: String,
    pub hostname: String,
}

/// What `profile show` says of a profile's provenance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Distinct hosts among the origins.
    pub hosts: usize,
    /// Origins (host and lineage).
    pub origins: usize,
    /// Runs and calls of the origins.
    pub runs: u64,
    pub calls: u64,
    /// Runs and calls from before provenance was recorded.
    pub unrecorded_runs: u64,
    pub unrecorded_calls: u64,
}

/// A profile's origins, by `<host id>/<lineage>`.
pub type Origins = BTreeMap<String, Origin>;

/// Record a training of `runs` runs and `calls` calls on `host` at `now` into `origins`, under
/// the profile's `lineage` (given one first when it has none). An empty one (a supervisor's
/// flush of nothing) records nothing.
pub fn record(
    origins: &mut Origins,
    lineage: &mut Option<String>,
    host: &Host,
    (runs, calls): (u64, u64),
    now: u64,
) {
    if runs == 0 && calls == 0 {
        return;
    }
    let lineage = lineage.get_or_insert_with(new_lineage);
    let o = origins
        .entry(format!("{}/{lineage}", host.id))
        .or_insert_with(|| Origin {
            host: host.id.clone(),
            hostname: host.name.clone(),
            runs: 0,
            calls: 0,
            first: now,
            last: now,
        });
    o.runs += runs;
    o.calls += calls;
    o.hostname.clone_from(&host.name);
    o.first = o.first.min(now);
    o.last = o.last.max(now);
}

/// Add the origins of profile `src` to `dst`'s; refused (and `dst` unchanged) when they share
/// one.
pub fn absorb(dst: &mut Origins, src: &Origins, names: (&str, &str)) -> Result<(), Overlap> {
    if let Some((key, o)) = src.iter().find(|(k, _)| dst.contains_key(*k)) {
        return Err(Overlap {
            src: names.0.to_owned(),
            dst: names.1.to_owned(),
            origin: key.clone(),
            hostname: o.hostname.clone(),
        });
    }
    dst.extend(src.iter().map(|(k, o)| (k.clone(), o.clone())));
    Ok(())
}

/// The summary of `origins` for a profile of `runs` runs and `calls` calls in all.
pub fn summary(origins: &Origins, runs: u64, calls: u64) -> Summary {
    let hosts: std::collections::BTreeSet<&str> =
        origins.values().map(|o| o.host.as_str()).collect();
    let (r, c) = origins
        .values()
        .fold((0u64, 0u64), |(r, c), o| (r + o.runs, c + o.calls));
    Summary {
        hosts: hosts.len(),
        origins: origins.len(),
        runs: r,
        calls: c,
        unrecorded_runs: runs.saturating_sub(r),
        unrecorded_calls: calls.saturating_sub(c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trainings_on_one_lineage_add_up_and_merges_refuse_overlap() {
        let a = Host::named("host-a", "a");
        let b = Host::named("host-b", "b");
        let (mut oa, mut la) = (Origins::new(), None);
        record(&mut oa, &mut la, &a, (1, 10), 5);
        record(&mut oa, &mut la, &a, (2, 20), 3);
        assert_eq!(oa.len(), 1);
        let o = oa.values().next().expect("one origin");
        assert_eq!((o.runs, o.calls, o.first, o.last), (3, 30, 3, 5));
        let (mut ob, mut lb) = (Origins::new(), None);
        record(&mut ob, &mut lb, &b, (4, 40), 6);
        assert_ne!(la, lb);

        let mut all = Origins::new();
        absorb(&mut all, &oa, ("a", "all")).expect("a");
        absorb(&mut all, &ob, ("b", "all")).expect("b");
        let s = summary(&all, 9, 100);
        assert_eq!((s.hosts, s.origins, s.runs, s.calls), (2, 2, 7, 70));
        assert_eq!((s.unrecorded_runs, s.unrecorded_calls), (2, 30));
        let before = all.clone();
        let e = absorb(&mut all, &oa, ("a", "all")).expect_err("twice");
        assert!(e.to_string().contains("twice") && e.to_string().contains("host a"));
        assert_eq!(all, before, "a refused merge changes nothing");
    }

    #[test]
    fn host_ids_are_short_and_plain() {
        let h = Host::named("a b/../c\nd", "x");
        assert_eq!(h.id, "ab..cd");
        let this = Host::this();
        assert!(!this.id.is_empty() && this.id.len() <= 64, "{this:?}");
        assert_ne!(new_lineage(), new_lineage());
    }
}
