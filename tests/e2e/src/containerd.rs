//! A private containerd for the tests: its own config, root, state and socket, so that the
//! host's containerd (dockerd's) is never touched, and `ctr` against it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::ecosystem::cmd;
use crate::Output;

/// One containerd process started by a test, stopped (with its containers) when dropped.
#[derive(Debug)]
pub struct Containerd {
    /// `/run/ngram-e2e-containerd-<tag>-<pid>`: config, socket, state, log.
    pub run_dir: PathBuf,
    /// `/var/lib/ngram-e2e-containerd-<tag>-<pid>`: content and snapshots.
    pub root: PathBuf,
    pub socket: PathBuf,
    /// The containerd namespace the test's containers live in.
    pub namespace: String,
    child: Child,
}

impl Containerd {
    /// Starts containerd with `extra` appended to its config (TOML, version 2); without the
    /// CRI plugin unless `extra` configures it (`cri: true`).
    pub fn start(tag: &str, extra: &str, cri: bool) -> Self {
        let name = format!("ngram-e2e-containerd-{tag}-{}", std::process::id());
        let run_dir = Path::new("/run").join(&name);
        let root = Path::new("/var/lib").join(&name);
        let _ = std::fs::remove_dir_all(&run_dir);
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&run_dir).expect("create containerd's run directory");
        let socket = run_dir.join("containerd.sock");
        let disabled = if cri {
            ""
        } else {
            "disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n"
        };
        let config = format!(
            "version = 2\nroot = \"{root}\"\nstate = \"{state}\"\n{disabled}\
             [grpc]\n  address = \"{sock}\"\n[ttrpc]\n  address = \"{sock}.ttrpc\"\n\
             [debug]\n  address = \"\"\n[metrics]\n  address = \"\"\n{extra}",
            root = root.display(),
            state = run_dir.join("state").display(),
            sock = socket.display(),
        );
        let config_path = run_dir.join("config.toml");
        std::fs::write(&config_path, config).expect("write containerd's config");
        let log = std::fs::File::create(run_dir.join("containerd.log")).expect("containerd log");
        let child = Command::new("containerd")
            .arg("--config")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("containerd log"))
            .stderr(log)
            .spawn()
            .expect("start containerd (Debian package containerd)");
        let c = Self {
            run_dir,
            root,
            socket,
            namespace: format!("ngram-e2e-{}", std::process::id()),
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if c.socket.exists() && c.ctr(&["version"]).code == Some(0) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "containerd did not answer within 30 s; its log:\n{}",
                c.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        c
    }

    /// containerd's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.run_dir.join("containerd.log")).unwrap_or_default()
    }

    /// `ctr --address SOCKET --namespace NS ARGS`.
    #[track_caller]
    pub fn ctr(&self, args: &[&str]) -> Output {
        self.ctr_in(&self.namespace, args)
    }

    /// `docker save IMAGE | ctr images import`; returns the image's reference in containerd.
    #[track_caller]
    pub fn import_from_docker(&self, image: &str) -> String {
        let tar = self.run_dir.join(format!("{image}.tar"));
        crate::ecosystem::docker_save(image, &tar);
        self.ctr(&["images", "import", &tar.to_string_lossy()])
            .success();
        let _ = std::fs::remove_file(&tar);
        format!("docker.io/library/{image}:latest")
    }

    /// `ctr --address SOCKET --namespace NAMESPACE ARGS` (CRI's containers are in `k8s.io`).
    #[track_caller]
    pub fn ctr_in(&self, namespace: &str, args: &[&str]) -> Output {
        let sock = self.socket.to_string_lossy().into_owned();
        let mut all = vec!["--address", sock.as_str(), "--namespace", namespace];
        all.extend_from_slice(args);
        cmd("ctr", &all)
    }

    /// Removes the test's containers (tasks killed) whatever state they are in.
    pub fn remove_all(&self) {
        self.remove_all_in(&self.namespace);
    }

    /// Removes every container of `namespace`.
    pub fn remove_all_in(&self, namespace: &str) {
        let list = self.ctr_in(namespace, &["containers", "list", "--quiet"]);
        for id in list.stdout.lines().filter(|l| !l.trim().is_empty()) {
            let _ = self.ctr_in(namespace, &["tasks", "kill", "--signal", "SIGKILL", id]);
            let _ = self.ctr_in(namespace, &["tasks", "delete", "--force", id]);
            let _ = self.ctr_in(namespace, &["containers", "delete", id]);
        }
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        // The test's namespace and CRI's (the pods' containers and sandboxes).
        for ns in [self.namespace.clone(), "k8s.io".to_owned()] {
            self.remove_all_in(&ns);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::env::var_os("NGRAM_IDS_E2E_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(&self.run_dir);
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }
}
