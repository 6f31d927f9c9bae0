//! The `ngram-ids.*` labels (Docker labels, or OCI annotations for other callers), parsed once
//! into types. Every value that is not one of the label's words is an error naming the
//! container, the label and what to use.

use std::collections::BTreeMap;

use ngram_profiler::profile::Mode;

use crate::session::{EnforceAction, ExecPolicy};
use crate::supervise::{EbpfEnforce, TracerKind};

/// `ngram-ids.profile=NAME`: share or name a profile (default: the image ID).
pub const PROFILE: &str = "ngram-ids.profile";
/// `ngram-ids.mode=train|alert|enforce`.
pub const MODE: &str = "ngram-ids.mode";
/// `ngram-ids.tracer=notify|ptrace|ebpf`.
pub const TRACER: &str = "ngram-ids.tracer";
/// `ngram-ids.enforce=deny|stop`: what enforce mode does with an anomalous call.
pub const ENFORCE: &str = "ngram-ids.enforce";
/// `ngram-ids.exec=alert|enforce`: what enforce does with `docker exec` processes.
pub const EXEC: &str = "ngram-ids.exec";
/// `ngram-ids.record=1|0`: record the container's calls into the store's `records`.
pub const RECORD: &str = "ngram-ids.record";
/// `ngram-ids.ebpf-enforce=auto|lsm|hybrid`: how enforce with the eBPF tracer refuses.
pub const EBPF_ENFORCE: &str = "ngram-ids.ebpf-enforce";

/// The labels of one container, parsed; `None` where the label is absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Labels {
    /// A valid profile name ([`ngram_profiler::profile::check_name`]).
    pub profile: Option<String>,
    pub mode: Option<Mode>,
    pub tracer: Option<TracerKind>,
    pub enforce: Option<EnforceAction>,
    pub exec: Option<ExecPolicy>,
    pub record: Option<bool>,
    pub ebpf_enforce: Option<EbpfEnforce>,
}

/// A label whose value is not one of its words.
#[derive(Debug, thiserror::Error)]
#[error("container {id}: {from} {key}={value:?}: use {expected}")]
pub struct LabelError {
    pub id: String,
    /// `label` or `annotation`.
    pub from: &'static str,
    pub key: &'static str,
    pub value: String,
    pub expected: &'static str,
}

/// A label value as an error shows it: cut to 80 characters.
pub(crate) fn shown(value: &str) -> String {
    if value.chars().count() > 80 {
        value.chars().take(80).chain("...".chars()).collect()
    } else {
        value.to_owned()
    }
}

impl Labels {
    /// Parse the `ngram-ids.*` entries of `map` (the labels of container `id`, from `from`).
    pub fn parse(
        map: &BTreeMap<String, String>,
        id: &str,
        from: &'static str,
    ) -> Result<Self, LabelError> {
        let field = |key: &'static str, expected: &'static str| {
            move |value: &String| LabelError {
                id: id.to_owned(),
                from,
                key,
                value: shown(value),
                expected,
            }
        };
        fn get<T>(
            map: &BTreeMap<String, String>,
            key: &str,
            parse: impl Fn(&str) -> Option<T>,
            err: impl Fn(&String) -> LabelError,
        ) -> Result<Option<T>, LabelError> {
            map.get(key)
                .map(|v| parse(v).ok_or_else(|| err(v)))
                .transpose()
        }
        Ok(Self {
            profile: get(
                map,
                PROFILE,
                |v| ngram_profiler::profile::check_name(v).ok().map(|()| v.to_owned()),
                field(
                    PROFILE,
                    "1-200 letters, digits and . _ - : @ + / with no empty, \".\" or \"..\" part (like an image name)",
                ),
            )?,
            mode: get(
                map,
                MODE,
                |v| v.parse().ok(),
                field(MODE, "train, alert or enforce"),
            )?,
            tracer: get(
                map,
                TRACER,
                |v| v.parse().ok(),
                field(TRACER, "notify, ptrace or ebpf"),
            )?,
            enforce: get(
                map,
                ENFORCE,
                |v| v.parse().ok(),
                field(ENFORCE, "deny or stop"),
            )?,
            exec: get(
                map,
                EXEC,
                |v| v.parse().ok(),
                field(EXEC, "alert or enforce"),
            )?,
            record: get(
                map,
                RECORD,
                |v| match v {
                    "1" | "true" => Some(true),
                    "0" | "false" => Some(false),
                    _ => None,
                },
                field(RECORD, "1 or 0 (true or false)"),
            )?,
            ebpf_enforce: get(
                map,
                EBPF_ENFORCE,
                |v| v.parse().ok(),
                field(EBPF_ENFORCE, "auto, lsm or hybrid"),
            )?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn every_label_parses_to_its_type() {
        let l = Labels::parse(
            &map(&[
                (PROFILE, "web"),
                (MODE, "enforce"),
                (TRACER, "ptrace"),
                (ENFORCE, "stop"),
                (EXEC, "enforce"),
                (RECORD, "true"),
                (EBPF_ENFORCE, "hybrid"),
                ("other", "x"),
            ]),
            "c1",
            "label",
        )
        .unwrap();
        assert_eq!(
            l,
            Labels {
                profile: Some("web".into()),
                mode: Some(Mode::Enforce),
                tracer: Some(TracerKind::Ptrace),
                enforce: Some(EnforceAction::Stop),
                exec: Some(ExecPolicy::Enforce),
                record: Some(true),
                ebpf_enforce: Some(EbpfEnforce::Hybrid),
            }
        );
        assert_eq!(
            Labels::parse(&map(&[]), "c1", "label").unwrap(),
            Labels::default()
        );
    }

    #[test]
    fn an_empty_or_climbing_profile_name_is_refused() {
        for name in ["", "../../etc", "a/b/../../c"] {
            let e = Labels::parse(&map(&[(PROFILE, name)]), "c1", "label")
                .unwrap_err()
                .to_string();
            assert!(
                e.starts_with(&format!(
                    "container c1: label {PROFILE}={name:?}: use 1-200"
                )),
                "{e}"
            );
        }
        let long = "n".repeat(10_000);
        let e = Labels::parse(&map(&[(PROFILE, &long)]), "c1", "label")
            .unwrap_err()
            .to_string();
        assert!(e.len() < 300, "the name is shown cut: {e}");
    }

    #[test]
    fn a_bad_value_names_the_container_the_label_and_the_words() {
        for (key, value, words) in [
            (MODE, "learn", "train, alert or enforce"),
            (TRACER, "ebpf2", "notify, ptrace or ebpf"),
            (ENFORCE, "kill", "deny or stop"),
            (EXEC, "deny", "alert or enforce"),
            (RECORD, "maybe", "1 or 0 (true or false)"),
            (RECORD, "yes", "1 or 0 (true or false)"),
            (RECORD, "", "1 or 0 (true or false)"),
            (EBPF_ENFORCE, "bpf", "auto, lsm or hybrid"),
        ] {
            let e = Labels::parse(&map(&[(key, value)]), "c7", "annotation")
                .unwrap_err()
                .to_string();
            assert_eq!(
                e,
                format!("container c7: annotation {key}={value:?}: use {words}")
            );
        }
    }
}
