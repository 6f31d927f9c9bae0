//! ngram-ids as the handler of a Kubernetes RuntimeClass (issue 13): a private containerd whose
//! CRI plugin has the runtime entry of docs/kubernetes.md (`runtimes.ngram-ids`, runc shim v2,
//! `BinaryName` = the runtime, `pod_annotations = ["ngram-ids.*"]`), driven with the CRI API
//! as kubelet drives it (RunPodSandbox with `runtime_handler: ngram-ids`, CreateContainer,
//! StartContainer, ExecSync). The pod's annotations choose the mode; the profile is keyed by
//! the image reference CRI writes into the bundle (`io.kubernetes.cri.image-name`); the pod
//! sandbox learns `cri-sandbox`.
//!
//! What this machine lacks is stood in for: no image can be pulled, so the sandbox ("pause")
//! image is built locally from ngram-busybox (`sleep`), and both images are imported with
//! `ctr images import`; no CNI plugin is installed, so the pods use the host's network
//! namespace (`NamespaceMode::NODE`), for which CRI calls no CNI plugin.
//!
//! Root only (`#[ignore]`d); `make test-ecosystem` runs it with `--ignored`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use hyper_util::rt::TokioIo;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::{
    ContainerConfig, ContainerMetadata, ContainerState, ContainerStatusRequest,
    CreateContainerRequest, ExecSyncRequest, ImageSpec, ImageStatusRequest, LinuxPodSandboxConfig,
    LinuxSandboxSecurityContext, NamespaceMode, NamespaceOption, PodSandboxConfig,
    PodSandboxMetadata, RemovePodSandboxRequest, RunPodSandboxRequest, StartContainerRequest,
    StopPodSandboxRequest, VersionRequest,
};
use ngram_e2e::containerd::Containerd;
use ngram_e2e::ecosystem::{
    cmd, require_command, require_root, shown, workload, PrivateRuntime, EXEC_ATTACK, REFUSED,
};
use ngram_e2e::BUSYBOX;
use tonic::transport::{Channel, Endpoint, Uri};

/// The RuntimeClass handler, as in docs/kubernetes.md.
const HANDLER: &str = "ngram-ids";
/// Training runs (one pod each).
const TRAIN_RUNS: u64 = 2;

/// The CRI runtime entry of docs/kubernetes.md, with `BinaryName` = `binary`.
fn cri_config(binary: &str, sandbox_image: &str) -> String {
    format!(
        r#"[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{sandbox_image}"
  disable_apparmor = true
  # These VMs lack CAP_SYS_RESOURCE: the sandbox's oom_score_adj -998 would fail runc's init too.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.ngram-ids]
      runtime_type = "io.containerd.runc.v2"
      pod_annotations = ["ngram-ids.*"]
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.ngram-ids.options]
        BinaryName = "{binary}"
"#
    )
}

/// A local stand-in for the pause image: ngram-busybox sleeping.
struct PauseImage {
    tag: String,
}

impl PauseImage {
    fn build() -> Self {
        let tag = format!("ngram-e2e-pause-{}:latest", std::process::id());
        let dockerfile = format!("FROM {BUSYBOX}\nCMD [\"sleep\", \"2147483647\"]\n");
        let mut c = std::process::Command::new("docker");
        c.args(["build", "--quiet", "--tag", &tag, "-"]);
        ngram_e2e::run_cmd(c, dockerfile.as_bytes(), Duration::from_secs(120)).success();
        Self { tag }
    }
}

impl Drop for PauseImage {
    fn drop(&mut self) {
        let _ = cmd("docker", &["rmi", &self.tag]);
    }
}

/// `docker save IMAGE | ctr -n k8s.io images import` (CRI's namespace).
fn import(c: &Containerd, image: &str) -> String {
    let tar = c.run_dir.join("image.tar");
    ngram_e2e::ecosystem::docker_save(image, &tar);
    c.ctr_in("k8s.io", &["images", "import", &tar.to_string_lossy()])
        .success();
    let _ = std::fs::remove_file(&tar);
    let name = image.split(':').next().unwrap_or(image);
    format!("docker.io/library/{name}:latest")
}

async fn channel(socket: std::path::PathBuf) -> Channel {
    Endpoint::try_from("http://[::]:50051")
        .expect("endpoint")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let socket = socket.clone();
            async move {
                Ok::<_, std::io::Error>(TokioIo::new(
                    tokio::net::UnixStream::connect(socket).await?,
                ))
            }
        }))
        .await
        .expect("connect to containerd's CRI socket")
}

/// A pod sandbox config in the host's network namespace, with `annotations`.
fn pod(name: &str, annotations: &[(&str, &str)], log_dir: &str) -> PodSandboxConfig {
    PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: name.to_owned(),
            uid: format!("{name}-uid"),
            namespace: "e2e".to_owned(),
            attempt: 0,
        }),
        // A pod in the node's network namespace has the node's hostname (kubelet sends none).
        log_directory: log_dir.to_owned(),
        annotations: annotations
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<HashMap<_, _>>(),
        linux: Some(LinuxPodSandboxConfig {
            security_context: Some(LinuxSandboxSecurityContext {
                namespace_options: Some(NamespaceOption {
                    network: NamespaceMode::Node as i32,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

struct Cri {
    rt: RuntimeServiceClient<Channel>,
}

impl Cri {
    /// Runs a pod through the handler with one container running `script`; returns the
    /// sandbox's and the container's ids.
    async fn run_pod(
        &mut self,
        name: &str,
        annotations: &[(&str, &str)],
        image: &str,
        script: &str,
        log_dir: &str,
    ) -> (String, String) {
        let config = pod(name, annotations, log_dir);
        let sandbox = self
            .rt
            .run_pod_sandbox(RunPodSandboxRequest {
                config: Some(config.clone()),
                runtime_handler: HANDLER.to_owned(),
            })
            .await
            .unwrap_or_else(|e| panic!("RunPodSandbox {name}: {e}"))
            .into_inner()
            .pod_sandbox_id;
        let container = self
            .rt
            .create_container(CreateContainerRequest {
                pod_sandbox_id: sandbox.clone(),
                config: Some(ContainerConfig {
                    metadata: Some(ContainerMetadata {
                        name: "work".to_owned(),
                        attempt: 0,
                    }),
                    image: Some(ImageSpec {
                        image: image.to_owned(),
                        ..Default::default()
                    }),
                    command: vec!["sh".to_owned(), "-c".to_owned(), script.to_owned()],
                    log_path: format!("{name}.log"),
                    ..Default::default()
                }),
                sandbox_config: Some(config),
            })
            .await
            .unwrap_or_else(|e| panic!("CreateContainer in {name}: {e}"))
            .into_inner()
            .container_id;
        self.rt
            .start_container(StartContainerRequest {
                container_id: container.clone(),
            })
            .await
            .unwrap_or_else(|e| panic!("StartContainer in {name}: {e}"));
        (sandbox, container)
    }

    /// Waits for the container to exit; its exit code.
    async fn wait_exit(&mut self, container: &str) -> i32 {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let st = self
                .rt
                .container_status(ContainerStatusRequest {
                    container_id: container.to_owned(),
                    verbose: false,
                })
                .await
                .expect("ContainerStatus")
                .into_inner()
                .status
                .expect("a status");
            if st.state == ContainerState::ContainerExited as i32 {
                return st.exit_code;
            }
            assert!(
                Instant::now() < deadline,
                "container {container} still runs"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Stops and removes a pod (its containers with it).
    async fn remove_pod(&mut self, sandbox: &str) {
        let _ = self
            .rt
            .stop_pod_sandbox(StopPodSandboxRequest {
                pod_sandbox_id: sandbox.to_owned(),
            })
            .await;
        let _ = self
            .rt
            .remove_pod_sandbox(RemovePodSandboxRequest {
                pod_sandbox_id: sandbox.to_owned(),
            })
            .await;
    }
}

#[test]
#[ignore = "needs root, containerd and Docker (to build the local images): make test-ecosystem"]
fn a_runtime_class_handler_runs_pods_under_ngram_ids() {
    require_root("a_runtime_class_handler_runs_pods_under_ngram_ids");
    require_command("containerd", "containerd");
    require_command("docker", "docker.io");
    let rt = PrivateRuntime::new("cri");
    let pause = PauseImage::build();
    let pause_ref = format!("docker.io/library/{}", pause.tag);
    let c = Containerd::start(
        "cri",
        &cri_config(&rt.wrapper.to_string_lossy(), &pause_ref),
        true,
    );
    let pause_ref = import(&c, &pause.tag);
    let image = import(&c, BUSYBOX);
    let log_dir = c.run_dir.join("pods");
    std::fs::create_dir_all(&log_dir).expect("pod log directory");
    let log_dir = log_dir.to_string_lossy().into_owned();

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        let ch = channel(c.socket.clone()).await;
        let mut cri = Cri {
            rt: RuntimeServiceClient::new(ch.clone()),
        };
        let version = cri
            .rt
            .version(VersionRequest::default())
            .await
            .expect("CRI Version")
            .into_inner();
        println!(
            "CRI: {} {} (API {})",
            version.runtime_name, version.runtime_version, version.runtime_api_version
        );
        let mut images = ImageServiceClient::new(ch);
        let mut image_id = String::new();
        for i in [&image, &pause_ref] {
            let st = images
                .image_status(ImageStatusRequest {
                    image: Some(ImageSpec {
                        image: i.clone(),
                        ..Default::default()
                    }),
                    verbose: false,
                })
                .await
                .expect("ImageStatus")
                .into_inner();
            let found = st
                .image
                .unwrap_or_else(|| panic!("CRI does not see image {i}"));
            if *i == image {
                image_id = found.id;
            }
        }

        // Train: the pod's annotation chooses the mode; the profile is the image's reference.
        let t0 = Instant::now();
        for i in 0..TRAIN_RUNS {
            let (sandbox, container) = cri
                .run_pod(
                    &format!("train-{i}"),
                    &[("ngram-ids.mode", "train")],
                    &image,
                    &workload(0),
                    &log_dir,
                )
                .await;
            assert_eq!(cri.wait_exit(&container).await, 0, "training pod {i}");
            cri.remove_pod(&sandbox).await;
        }
        let meta = rt.wait_for_runs(&image, TRAIN_RUNS);
        println!(
            "CRI: profile {image} after {TRAIN_RUNS} pods in {:.1?}: {meta}",
            t0.elapsed()
        );
        let sandbox_meta = rt.wait_for_runs(ngram_e2e_sandbox_profile(), TRAIN_RUNS);
        println!("CRI: profile cri-sandbox: {sandbox_meta}");

        // Enforce through the pod's annotations: the attack through ExecSync is refused
        // (exec=enforce), a normal ExecSync runs. The container is created as kubelet creates
        // it, by image ID: containerd still writes the image's name into
        // io.kubernetes.cri.image-name, so the trained profile applies.
        let (sandbox, container) = cri
            .run_pod(
                "enforce",
                &[("ngram-ids.mode", "enforce"), ("ngram-ids.exec", "enforce")],
                &image_id,
                &workload(600),
                &log_dir,
            )
            .await;
        let exec = cri
            .rt
            .exec_sync(ExecSyncRequest {
                container_id: container.clone(),
                cmd: vec!["sh".to_owned(), "-c".to_owned(), EXEC_ATTACK.to_owned()],
                timeout: 30,
            })
            .await
            .expect("ExecSync")
            .into_inner();
        let stderr = String::from_utf8_lossy(&exec.stderr);
        assert!(
            stderr.contains(REFUSED),
            "ExecSync attack went through: {stderr}"
        );
        let found = poll_alerts(&rt, &container).await;
        println!("CRI, enforce mode, ExecSync attack:\n{}", shown(&found));
        assert!(
            found
                .iter()
                .any(|a| a.action == "denied" && a.errno == Some(1)),
            "no refusal: {}",
            shown(&found)
        );
        assert!(
            found.iter().all(|a| a.profile == image),
            "not the image's profile: {}",
            shown(&found)
        );
        // Alerts name the container by namespace, pod and container.
        assert!(
            found
                .iter()
                .all(|a| a.json["output_fields"]["container.name"] == "e2e/enforce/work"),
            "{}",
            found
                .first()
                .map(|a| a.json.to_string())
                .unwrap_or_default()
        );
        let passwd = cri
            .rt
            .exec_sync(ExecSyncRequest {
                container_id: container.clone(),
                cmd: vec!["cat".to_owned(), "/etc/passwd".to_owned()],
                timeout: 30,
            })
            .await
            .expect("ExecSync")
            .into_inner();
        assert_eq!(passwd.exit_code, 0, "a normal exec must run");
        assert!(
            passwd.stdout.starts_with(b"root:"),
            "a normal exec must run"
        );
        cri.remove_pod(&sandbox).await;
        println!("CRI: whole test in {:.1?}", t0.elapsed());
    });
}

/// The profile every pod sandbox learns.
fn ngram_e2e_sandbox_profile() -> &'static str {
    "cri-sandbox"
}

/// Waits up to 20 s for alerts of `container`.
async fn poll_alerts(rt: &PrivateRuntime, container: &str) -> Vec<ngram_e2e::ids::Alert> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let found = rt.alerts(container);
        if !found.is_empty() || Instant::now() >= deadline {
            tokio::time::sleep(Duration::from_millis(500)).await;
            return rt.alerts(container);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
