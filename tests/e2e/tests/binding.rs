//! A profile bound to one image by digest (`ngram-ids profile bind`, decisions 84 and 94), with
//! the real dockerd: a container of another image naming the profile is refused at `create`,
//! in train and alert mode, with one line naming both digests and what to do; a container of
//! the bound image runs. ngram-ids only.

use std::time::Duration;

use ngram_e2e::ids::{ngram_ids, setup_ids, Profile, ALERT, TRAIN};
use ngram_e2e::{E2e, BUSYBOX};

/// Two tiny images built from the local busybox image, told apart by a label (so two image
/// IDs); removed when dropped.
struct Images<'a> {
    e: &'a E2e,
    names: [String; 2],
}

impl<'a> Images<'a> {
    fn build(e: &'a E2e) -> Self {
        let names = ["a", "b"].map(|x| format!("ngram-e2e-bind-{x}:{}", std::process::id()));
        for (name, x) in names.iter().zip(["a", "b"]) {
            let dockerfile = format!("FROM {BUSYBOX}\nLABEL ngram-ids.e2e.binding={x}\n");
            e.docker_stdin(
                &["build", "--quiet", "-t", name, "-"],
                dockerfile.as_bytes(),
            )
            .success();
        }
        Self { e, names }
    }

    /// The image ID of the image `i` (0: A, 1: B).
    fn id(&self, i: usize) -> String {
        let id = self
            .e
            .docker(&["image", "inspect", "--format", "{{.Id}}", &self.names[i]])
            .success()
            .out()
            .to_owned();
        assert!(
            id.starts_with("sha256:") && id.len() == 71,
            "odd image id {id}"
        );
        id
    }
}

impl Drop for Images<'_> {
    fn drop(&mut self) {
        for n in &self.names {
            let _ = self.e.docker(&["rmi", "--force", n]);
        }
    }
}

#[test]
fn a_container_of_another_image_is_refused_at_create() {
    let Some(e) = setup_ids("a_container_of_another_image_is_refused_at_create") else {
        return;
    };
    let images = Images::build(&e);
    let (a, b) = (images.id(0), images.id(1));
    assert_ne!(a, b, "the two images must differ");
    let p = Profile::new("bind");
    let run = |runtime: &str, image: &str| {
        let c = e.container();
        e.run_with(runtime, &c, &["--rm", "--label", &p.label, image, "true"])
    };

    // Learn on image A, then bind the profile to A by its name in the local Docker.
    run(TRAIN, &images.names[0]).success();
    p.wait_for_runs(1, Duration::from_secs(60));
    let out = ngram_ids(&["profile", "bind", &p.name, &images.names[0]]);
    assert!(
        out.success()
            .stdout
            .contains(&format!("bound to image {a}")),
        "{out}"
    );
    let shown = p.show().expect("the profile exists");
    assert_eq!(shown.json["bound_image"], a.as_str(), "{}", shown.json);
    let text = ngram_ids(&["profile", "show", &p.name]);
    assert!(
        text.success().stdout.contains(&format!("image        {a}")),
        "{text}"
    );

    // A container of image B naming the profile: refused at create, in alert and train mode,
    // with one line naming both digests and what to do; the profile learns nothing from it.
    for runtime in [ALERT, TRAIN] {
        let out = run(runtime, &images.names[1]);
        assert_ne!(out.code, Some(0), "{runtime}: image B ran: {out}");
        out.only_the_runtime_error();
        eprintln!("{runtime}: refused as it should be: {}", out.stderr.trim());
        for want in [
            format!("profile {} is bound to image {a}", p.name),
            format!("runs image {b}"),
            "ngram-ids profile pull".to_owned(),
            format!("ngram-ids profile bind {} {b}", p.name),
        ] {
            assert!(
                out.stderr.contains(&want),
                "{runtime}: no {want:?} in {out}"
            );
        }
    }
    let after = p.show().expect("the profile exists");
    assert_eq!(
        after.runs, shown.runs,
        "a refused container trained the profile"
    );

    // A container of image A runs, in both modes.
    run(ALERT, &images.names[0]).success();
    run(TRAIN, &images.names[0]).success();
    p.wait_for_runs(shown.runs + 1, Duration::from_secs(60));

    // Bound by digest given directly, to B: now A is refused and B runs; unbound, both run.
    ngram_ids(&["profile", "bind", &p.name, &b]).success();
    let out = run(ALERT, &images.names[0]);
    assert_ne!(
        out.code,
        Some(0),
        "image A ran against a profile bound to B: {out}"
    );
    assert!(out.stderr.contains(&format!("runs image {a}")), "{out}");
    run(ALERT, &images.names[1]).success();
    ngram_ids(&["profile", "unbind", &p.name]).success();
    run(ALERT, &images.names[0]).success();
    run(ALERT, &images.names[1]).success();

    // An image the local Docker does not know: one line.
    let out = ngram_ids(&["profile", "bind", &p.name, "ngram-e2e-no-such-image:1"]);
    assert_ne!(out.code, Some(0), "{out}");
    assert_eq!(out.stderr.trim_end().lines().count(), 1, "{out}");
    assert!(
        out.stderr.contains("pull or build the image first"),
        "{out}"
    );
}
