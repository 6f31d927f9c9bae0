//! Profiles through a real OCI registry (issue 13, parts 4 and 5): Debian's `docker-registry`,
//! started here on a free loopback port with its own storage and config, stopped at the end.
//! Push from two "hosts" (two stores, two host ids), pull into a third store, equal counts, a
//! fleet merge that is exactly the sum, and bad artifacts (corrupt, foreign, oversized,
//! unknown, registry down) refused in one line without touching the store. Needs the
//! docker-registry package (scripts/setup-host.sh --test): #[ignore]d here, run by `make unit`.
#![cfg(feature = "registry")] // shim's default feature; without it there is no push or pull
#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use ngram_ids::tools::registry::artifact;
use ngram_ids::tools::registry::client::{self, Registry};
use ngram_profiler::store::Store;
use serde_json::{json, Value};

const IMAGE: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
const OTHER: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

/// A registry of our own; killed and waited for when dropped.
struct LocalRegistry {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl LocalRegistry {
    fn start() -> Self {
        Self::start_with("")
    }

    /// A registry whose config ends with `extra` (YAML: `http.tls`, `auth`; `http:` is the
    /// last key before it, two spaces per level).
    fn start_with(extra: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n{extra}",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("log")).unwrap())
            .spawn()
            .expect("docker-registry is not installed: scripts/setup-host.sh --test");
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(&addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "docker-registry did not listen on {addr}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Self {
            child,
            addr,
            _dir: dir,
        }
    }

    fn port(&self) -> u16 {
        self.addr.rsplit_once(':').unwrap().1.parse().unwrap()
    }

    fn r(&self, path: &str) -> String {
        format!("{}/{path}", self.addr)
    }
}

impl Drop for LocalRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run(db: &Path, host: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ngram-ids"))
        .env("NGRAM_IDS_DB", db)
        .env("NGRAM_IDS_HOST", host)
        .args(args)
        .output()
        .unwrap()
}

fn ok(db: &Path, host: &str, args: &[&str]) -> String {
    let out = run(db, host, args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The one-line error of a command that must fail.
fn err(db: &Path, host: &str, args: &[&str]) -> String {
    let out = run(db, host, args);
    assert!(!out.status.success(), "{args:?} should fail");
    let e = String::from_utf8(out.stderr).unwrap();
    assert_eq!(e.trim_end().lines().count(), 1, "one line: {e}");
    e
}

/// ADFA-style traces (i386 numbers): `files` files of `pattern` varied by `seed`.
fn traces(dir: &Path, name: &str, pattern: &[u16], seed: usize, files: usize) -> PathBuf {
    let d = dir.join(name);
    std::fs::create_dir_all(&d).unwrap();
    for f in 0..files {
        let mut s = String::new();
        for r in 0..30 {
            for (j, nr) in pattern.iter().enumerate() {
                let nr = if (r * 7 + j + f + seed).is_multiple_of(13) {
                    54 + u16::try_from(seed).unwrap()
                } else {
                    *nr
                };
                s.push_str(&format!("{nr} "));
            }
        }
        std::fs::write(d.join(format!("t{f}.txt")), s).unwrap();
    }
    d
}

/// The manifest digest a push or pull names (`…@sha256:…`).
/// Train profile `name` in `db`, on host `host`, from the ADFA-format traces in `t` (n = 3).
fn train(db: &Path, host: &str, name: &str, t: &Path) -> String {
    ok(
        db,
        host,
        &[
            "profile",
            "train",
            name,
            "--format",
            "adfa",
            "--n",
            "3",
            t.to_str().unwrap(),
        ],
    )
}

fn digest_in(out: &str) -> String {
    let at = out.find("@sha256:").unwrap();
    out[at + 1..at + 1 + 71].to_owned()
}

fn counts(db: &Path, name: &str) -> ngram_profiler::profile::Profile {
    Store::open(db).unwrap().load(name).unwrap()
}

fn show(db: &Path, name: &str) -> Value {
    serde_json::from_str(&ok(db, "x", &["profile", "show", name, "--json"])).unwrap()
}

/// Learn on two hosts, push both, pull on a reviewer, merge (exact sums), push the fleet
/// profile and pull it on the hosts.
#[test]
#[ignore = "needs Debian's docker-registry (scripts/setup-host.sh --test); run by make unit"]
fn push_pull_and_a_fleet_merge_are_exact() {
    let reg = LocalRegistry::start();
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        tmp.path().join("a"),
        tmp.path().join("b"),
        tmp.path().join("c"),
    );
    let ta = traces(tmp.path(), "ta", &[3, 4, 5, 6, 3, 4, 192, 91], 0, 3);
    let tb = traces(tmp.path(), "tb", &[3, 5, 4, 6, 5, 4, 192, 90, 91], 1, 2);
    train(&a, "host-a", "web", &ta);
    train(&b, "host-b", "web", &tb);
    train(&b, "host-b", "web", &tb);

    // An unbound profile is pushed only on purpose.
    let e = err(&a, "host-a", &["profile", "push", "web", &reg.r("p/web:a")]);
    assert!(
        e.contains("bound to no image") && e.contains("--image"),
        "{e}"
    );
    let out = ok(
        &a,
        "host-a",
        &[
            "profile",
            "push",
            "web",
            &reg.r("p/web:a"),
            "--image",
            IMAGE,
        ],
    );
    assert!(out.contains("1 hosts") && out.contains(IMAGE), "{out}");
    let pushed = digest_in(&out);
    ok(
        &b,
        "host-b",
        &[
            "profile",
            "push",
            "web",
            &reg.r("p/web:b"),
            "--image",
            IMAGE,
        ],
    );

    // The reviewer pulls both: the counts are the pushed ones, exactly.
    let out = ok(
        &c,
        "review",
        &["profile", "pull", &reg.r("p/web:a"), "--as", "web-a"],
    );
    assert!(out.contains("stored as profile web-a"), "{out}");
    assert_eq!(
        digest_in(&out),
        pushed,
        "the digest pushed is the digest pulled"
    );
    ok(
        &c,
        "review",
        &["profile", "pull", &reg.r("p/web:b"), "--as", "web-b"],
    );
    let (pa, pb) = (counts(&a, "web"), counts(&b, "web"));
    assert_eq!(counts(&c, "web-a").counts, pa.counts);
    assert_eq!(counts(&c, "web-b").counts, pb.counts);
    assert_eq!(counts(&c, "web-b").meta.runs, pb.meta.runs);
    assert_eq!(counts(&c, "web-a").meta.image.as_deref(), Some(IMAGE));
    assert_eq!(show(&c, "web-b")["provenance"]["hosts"], 1);

    // Merge: exactly the sum of every n-gram's count, runs and calls; two hosts.
    ok(
        &c,
        "review",
        &["profile", "merge", "fleet", "web-a", "web-b"],
    );
    let fleet = counts(&c, "fleet");
    let mut grams: Vec<Vec<u16>> = pa.counts.ngrams().into_iter().map(|g| g.0).collect();
    grams.extend(pb.counts.ngrams().into_iter().map(|g| g.0));
    for g in &grams {
        assert_eq!(
            fleet.counts.count(g),
            pa.counts.count(g) + pb.counts.count(g),
            "{g:?}"
        );
    }
    assert_eq!(fleet.counts.total(), pa.counts.total() + pb.counts.total());
    assert_eq!(fleet.meta.runs, pa.meta.runs + pb.meta.runs);
    assert_eq!(fleet.meta.calls, pa.meta.calls + pb.meta.calls);
    let s = show(&c, "fleet");
    assert_eq!(s["provenance"]["hosts"], 2, "{s}");
    assert_eq!(s["provenance"]["runs"], 3 + 2 * 2);
    assert_eq!(s["provenance"]["unrecorded_runs"], 0);
    let text = ok(&c, "review", &["profile", "show", "fleet"]);
    assert!(text.contains("provenance   2 hosts, 7 runs"), "{text}");
    // The same counts twice are refused, and change nothing.
    let e = err(&c, "review", &["profile", "merge", "fleet", "web-a"]);
    assert!(e.contains("twice"), "{e}");
    assert_eq!(counts(&c, "fleet").counts, fleet.counts);

    // Review, pin, push the fleet profile; each host takes it in place of its own.
    ok(
        &c,
        "review",
        &["profile", "promote", "fleet", "--to", "alert"],
    );
    ok(
        &c,
        "review",
        &["profile", "push", "fleet", &reg.r("p/web:v1")],
    );
    let e = err(
        &a,
        "host-a",
        &["profile", "pull", &reg.r("p/web:v1"), "--as", "web"],
    );
    assert!(e.contains("exists") && e.contains("--merge"), "{e}");
    // Host A's own counts are in it already: a merge would count them twice.
    let e = err(
        &a,
        "host-a",
        &[
            "profile",
            "pull",
            &reg.r("p/web:v1"),
            "--as",
            "web",
            "--merge",
        ],
    );
    assert!(e.contains("twice"), "{e}");
    assert_eq!(
        counts(&a, "web").counts,
        pa.counts,
        "a refused pull changes nothing"
    );
    let out = ok(
        &a,
        "host-a",
        &[
            "profile",
            "pull",
            &reg.r("p/web:v1"),
            "--as",
            "web",
            "--replace",
        ],
    );
    assert!(
        out.contains("replaced profile web") && out.contains("mode alert"),
        "{out}"
    );
    assert_eq!(counts(&a, "web").counts, fleet.counts);
    // Training on after the pull is an origin of its own; a merge with new counts of a third
    // host adds up exactly too.
    train(&a, "host-a", "web", &ta);
    let d = tmp.path().join("d");
    let td = traces(tmp.path(), "td", &[3, 4, 6, 5, 192, 91], 2, 1);
    train(&d, "host-d", "web", &td);
    ok(
        &d,
        "host-d",
        &[
            "profile",
            "push",
            "web",
            &reg.r("p/web:d"),
            "--image",
            IMAGE,
        ],
    );
    let before = counts(&a, "web");
    ok(
        &a,
        "host-a",
        &[
            "profile",
            "pull",
            &reg.r("p/web:d"),
            "--as",
            "web",
            "--merge",
        ],
    );
    let after = counts(&a, "web");
    let pd = counts(&d, "web");
    assert_eq!(
        after.counts.total(),
        before.counts.total() + pd.counts.total()
    );
    assert_eq!(after.meta.runs, before.meta.runs + pd.meta.runs);
    assert_eq!(show(&a, "web")["provenance"]["hosts"], 3);

    // A profile bound to another image does not merge.
    ok(
        &d,
        "host-d",
        &[
            "profile",
            "push",
            "web",
            &reg.r("p/web:other"),
            "--image",
            OTHER,
        ],
    );
    let e = err(
        &a,
        "host-a",
        &[
            "profile",
            "pull",
            &reg.r("p/web:other"),
            "--as",
            "web",
            "--merge",
        ],
    );
    assert!(e.contains("do not merge") && e.contains(OTHER), "{e}");
    assert_eq!(counts(&a, "web").counts, after.counts);
}

/// A manifest naming `parts` (media type, bytes), with config `config` of type `config_type`.
fn manifest(config_type: &str, config: &[u8], parts: &[(&str, &[u8])]) -> Vec<u8> {
    let d =
        |t: &str, b: &[u8]| json!({"mediaType": t, "digest": client::digest(b), "size": b.len()});
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": artifact::MANIFEST,
        "artifactType": artifact::ARTIFACT_TYPE,
        "config": d(config_type, config),
        "layers": parts.iter().map(|(t, b)| d(t, b)).collect::<Vec<_>>(),
    }))
    .unwrap()
}

/// Corrupt, foreign, oversized and missing artifacts and a registry that is down: one line each,
/// and the store (even one that does not exist yet) is left as it was.
#[test]
#[ignore = "needs Debian's docker-registry (scripts/setup-host.sh --test); run by make unit"]
fn bad_artifacts_are_refused_and_change_nothing() {
    let reg = LocalRegistry::start();
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let t = traces(tmp.path(), "t", &[3, 4, 5, 6, 3, 4, 192, 91], 0, 2);
    train(&src, "h", "web", &t);
    ok(
        &src,
        "h",
        &[
            "profile",
            "push",
            "web",
            &reg.r("p/web:good"),
            "--any-image",
        ],
    );
    // Its parts, to build bad artifacts from.
    let p = counts(&src, "web");
    let packed = artifact::pack(&p.clone(), None, None).unwrap();
    let (config, meta, good_counts) = (
        packed.config.clone(),
        packed.layers[0].data.clone(),
        packed.layers[1].data.clone(),
    );
    let raw = |tag: &str, blobs: &[&[u8]], m: Vec<u8>| {
        let r = Registry::new(
            &reg.r(&format!("p/web:{tag}")),
            &client::Transport::default(),
        )
        .unwrap();
        r.push_raw(&blobs.iter().map(|b| b.to_vec()).collect::<Vec<_>>(), &m)
            .unwrap();
    };
    let corrupt =
        b"{\"n\":3,\"arch\":\"x86_64\",\"syscalls\":[[0,1]],\"grams\":[0,1],\"counts\":[1]}";
    raw(
        "corrupt",
        &[&config, &meta, corrupt.as_slice()],
        manifest(
            artifact::CONFIG,
            &config,
            &[
                (artifact::META, &meta),
                (artifact::COUNTS, corrupt.as_slice()),
            ],
        ),
    );
    raw(
        "foreign",
        &[&config, &meta, &good_counts],
        manifest(
            "application/vnd.oci.image.config.v1+json",
            &config,
            &[(artifact::META, &meta), (artifact::COUNTS, &good_counts)],
        ),
    );
    let big = vec![b' '; usize::try_from(artifact::MAX_BLOB).unwrap() + 1];
    raw(
        "big",
        &[&config, &meta, &big],
        manifest(
            artifact::CONFIG,
            &config,
            &[(artifact::META, &meta), (artifact::COUNTS, &big)],
        ),
    );

    // The store the pulls go to: one profile of its own, and a path that does not exist yet.
    let db = tmp.path().join("db");
    train(&db, "h", "mine", &t);
    let before = ok(&db, "h", &["profile", "list"]);
    let fresh = tmp.path().join("fresh");
    let down = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let cases: [(String, &str); 5] = [
        (reg.r("p/web:corrupt"), "counts layer is corrupt"),
        (reg.r("p/web:foreign"), "not an ngram-ids profile"),
        (reg.r("p/web:big"), "64 MiB"),
        (reg.r("p/nothing:v1"), "is not in registry"),
        (format!("127.0.0.1:{down}/p/web:v1"), "unreachable"),
    ];
    for (r, want) in &cases {
        for store in [&db, &fresh] {
            let e = err(store, "h", &["profile", "pull", r, "--as", "web"]);
            assert!(e.contains(want), "{r}: {e}");
        }
        assert_eq!(ok(&db, "h", &["profile", "list"]), before, "{r}");
        assert!(!fresh.exists(), "{r}: a failed pull created the store");
    }
    // The good one goes in.
    ok(&db, "h", &["profile", "pull", &reg.r("p/web:good")]);
    assert_eq!(counts(&db, "web").counts, p.counts);
}

/// A command that must succeed (openssl, htpasswd).
fn tool(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} ({e}): scripts/setup-host.sh --test installs it"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A CA of the test's own and a server certificate it signs for `127.0.0.1`, `0.0.0.0` and
/// `localhost`: (ca.crt, server.crt, server.key) in `dir`.
fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let p = |f: &str| dir.join(f).to_str().unwrap().to_owned();
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
    let mut ca = vec![
        "req",
        "-x509",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=ngram-ids test CA",
    ];
    ca.extend(ec);
    let (ca_key, ca_crt) = (p("ca.key"), p("ca.crt"));
    ca.extend(["-keyout", &ca_key, "-out", &ca_crt]);
    ca.extend(["-addext", "basicConstraints=critical,CA:TRUE"]);
    ca.extend(["-addext", "keyUsage=critical,keyCertSign,cRLSign"]);
    tool("openssl", &ca);
    let (key, csr, crt, ext) = (p("server.key"), p("server.csr"), p("server.crt"), p("ext"));
    let mut req = vec!["req", "-nodes", "-subj", "/CN=127.0.0.1"];
    req.extend(ec);
    req.extend(["-keyout", &key, "-out", &csr]);
    tool("openssl", &req);
    std::fs::write(
        &ext,
        "subjectAltName=IP:127.0.0.1,IP:0.0.0.0,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    tool(
        "openssl",
        &[
            "x509",
            "-req",
            "-days",
            "2",
            "-in",
            &csr,
            "-CA",
            &ca_crt,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-extfile",
            &ext,
            "-out",
            &crt,
        ],
    );
    (ca_crt.into(), crt.into(), key.into())
}

fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(A[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A Docker config directory (for DOCKER_CONFIG) whose `auths` holds `user:pass` for
/// `registry`, as `docker login` writes it.
fn docker_config(dir: &Path, registry: &str, user: &str, pass: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let auth = base64(format!("{user}:{pass}").as_bytes());
    std::fs::write(
        dir.join("config.json"),
        serde_json::to_vec(&json!({"auths": {registry: {"auth": auth}}})).unwrap(),
    )
    .unwrap();
    dir.to_owned()
}

/// `ngram-ids ARGS` with `env` set (DOCKER_CONFIG, SSL_CERT_FILE).
fn run_env(db: &Path, env: &[(&str, &Path)], args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ngram-ids"));
    c.env("NGRAM_IDS_DB", db)
        .env("NGRAM_IDS_HOST", "h")
        .args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn ok_env(db: &Path, env: &[(&str, &Path)], args: &[&str]) -> String {
    let out = run_env(db, env, args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn err_env(db: &Path, env: &[(&str, &Path)], args: &[&str]) -> String {
    let out = run_env(db, env, args);
    assert!(!out.status.success(), "{args:?} should fail");
    let e = String::from_utf8(out.stderr).unwrap();
    assert_eq!(e.trim_end().lines().count(), 1, "one line: {e}");
    eprint!("refused as it should be: {e}");
    e
}

/// `/etc/docker/certs.d/<registry>/ca.crt`, as Docker users install a registry's CA; removed
/// (with the directories it created) when dropped.
struct CertsD {
    created: Vec<PathBuf>,
}

impl CertsD {
    fn install(registry: &str, ca: &Path) -> Self {
        let root = Path::new(client::CERTS_DIRS[0]);
        let mut created = Vec::new();
        for d in [root.parent().unwrap(), root, &root.join(registry)] {
            if !d.exists() {
                std::fs::create_dir(d).unwrap();
                created.push(d.to_owned());
            }
        }
        std::fs::copy(ca, root.join(registry).join("ca.crt")).unwrap();
        created.reverse();
        Self { created }
    }
}

impl Drop for CertsD {
    fn drop(&mut self) {
        for d in &self.created {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// A registry over TLS with a CA of the test's own, and htpasswd basic auth: which CA is
/// trusted (none: refused in one line; `--ca-file`; Docker's certs.d; the system store through
/// SSL_CERT_FILE), and credentials from Docker's config (none, wrong, right). A registry that
/// is not on loopback and speaks plain HTTP is refused without `--insecure`. `0.0.0.0` stands
/// for such a registry: it is not a loopback address by decision 93's rule, yet Linux routes it
/// to this machine, so the test needs no network but loopback.
#[test]
#[ignore = "needs root (writes /etc/docker/certs.d/127.0.0.1:PORT), Debian's docker-registry and openssl; run by make unit"]
fn tls_and_credentials_from_docker_config() {
    let tmp = tempfile::tempdir().unwrap();
    let (ca, crt, key) = certificates(tmp.path());
    let htpasswd = tmp.path().join("htpasswd");
    std::fs::write(&htpasswd, tool("htpasswd", &["-Bbn", "tester", "s3cret"])).unwrap();
    let reg = LocalRegistry::start_with(&format!(
        "  tls:\n    certificate: {}\n    key: {}\nauth:\n  htpasswd:\n    realm: ngram-ids-test\n    path: {}\n",
        crt.display(),
        key.display(),
        htpasswd.display()
    ));
    let host = reg.addr.clone();
    let a = tmp.path().join("a");
    let t = traces(tmp.path(), "t", &[3, 4, 5, 6, 3, 4, 192, 91], 0, 2);
    train(&a, "h", "web", &t);
    let r = reg.r("p/web:v1");
    let push = ["profile", "push", "web", r.as_str(), "--any-image"];
    let right = docker_config(&tmp.path().join("right"), &host, "tester", "s3cret");
    let wrong = docker_config(&tmp.path().join("wrong"), &host, "tester", "guess");
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();

    // A loopback registry without a CA of its own is spoken to over plain HTTP: it answers
    // that it speaks TLS, and the line says where its CA goes.
    let e = err_env(&a, &[("DOCKER_CONFIG", &right)], &push);
    assert!(
        e.contains("speaks TLS") && e.contains(&format!("/etc/docker/certs.d/{host}/ca.crt")),
        "{e}"
    );
    // With its CA: no credentials, wrong ones, right ones.
    let push_ca = [
        "profile",
        "push",
        "web",
        r.as_str(),
        "--any-image",
        "--ca-file",
        ca.to_str().unwrap(),
    ];
    let e = err_env(&a, &[("DOCKER_CONFIG", &empty)], &push_ca);
    assert!(
        e.contains(&format!("registry {host} asks for credentials"))
            && e.contains(&format!("docker login {host}")),
        "{e}"
    );
    let e = err_env(&a, &[("DOCKER_CONFIG", &wrong)], &push_ca);
    assert!(
        e.contains(&format!("registry {host} refused the credentials"))
            && e.contains(&format!("docker login {host}"))
            && !e.contains("guess"),
        "{e}"
    );
    let out = ok_env(&a, &[("DOCKER_CONFIG", &right)], &push_ca);
    assert!(out.contains("pushed profile web"), "{out}");
    // A CA file that holds no certificate is refused before anything is sent.
    let e = err_env(
        &a,
        &[("DOCKER_CONFIG", &right)],
        &[
            "profile",
            "pull",
            &r,
            "--ca-file",
            htpasswd.to_str().unwrap(),
        ],
    );
    assert!(e.contains("holds no certificate"), "{e}");

    // Pull on a second store, trusting the CA as Docker does: /etc/docker/certs.d.
    let b = tmp.path().join("b");
    let e = err_env(&b, &[("DOCKER_CONFIG", &right)], &["profile", "pull", &r]);
    assert!(e.contains("speaks TLS"), "{e}");
    {
        let _certs = CertsD::install(&host, &ca);
        let out = ok_env(&b, &[("DOCKER_CONFIG", &right)], &["profile", "pull", &r]);
        assert!(out.contains("stored as profile web"), "{out}");
        let e = err_env(
            &b,
            &[("DOCKER_CONFIG", &wrong)],
            &["profile", "pull", &r, "--as", "other"],
        );
        assert!(e.contains("refused the credentials"), "{e}");
    }
    assert_eq!(counts(&b, "web").counts, counts(&a, "web").counts);

    // Not on loopback: TLS, always. Untrusted, then trusted through the system store
    // (SSL_CERT_FILE) and through --ca-file.
    let far = format!("0.0.0.0:{}/p/web:v1", reg.port());
    let c = tmp.path().join("c");
    let e = err_env(&c, &[("DOCKER_CONFIG", &right)], &["profile", "pull", &far]);
    assert!(
        e.contains("TLS certificate is not trusted") && e.contains("--ca-file"),
        "{e}"
    );
    let far_auth = docker_config(
        &tmp.path().join("far"),
        &format!("0.0.0.0:{}", reg.port()),
        "tester",
        "s3cret",
    );
    ok_env(
        &c,
        &[("DOCKER_CONFIG", &far_auth), ("SSL_CERT_FILE", &ca)],
        &["profile", "pull", &far, "--as", "sys"],
    );
    ok_env(
        &c,
        &[("DOCKER_CONFIG", &far_auth)],
        &[
            "profile",
            "pull",
            &far,
            "--as",
            "file",
            "--ca-file",
            ca.to_str().unwrap(),
        ],
    );
    assert_eq!(counts(&c, "file").counts, counts(&a, "web").counts);

    // A plain-HTTP registry that is not on loopback: refused in one line without --insecure.
    let plain = LocalRegistry::start();
    let far_plain = format!("0.0.0.0:{}/p/web:v1", plain.port());
    let e = err_env(
        &a,
        &[],
        &["profile", "push", "web", &far_plain, "--any-image"],
    );
    assert!(
        e.contains("did not answer over TLS") && e.contains("--insecure"),
        "{e}"
    );
    let out = ok(
        &a,
        "h",
        &[
            "profile",
            "push",
            "web",
            &far_plain,
            "--any-image",
            "--insecure",
        ],
    );
    assert!(out.contains("pushed profile web"), "{out}");
}
