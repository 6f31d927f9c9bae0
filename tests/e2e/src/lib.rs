//! Helpers for the end-to-end tests: driving the real `docker` CLI against a chosen runtime.
//!
//! The tests run only when `NGRAM_IDS_E2E=1` (set by `scripts/test-e2e.sh`, which prepares the
//! host, the images and the runtime); otherwise each test prints why it is skipped and passes,
//! so a plain `cargo test` without root or dockerd stays green. `NGRAM_IDS_E2E_RUNTIME` picks
//! the runtime (`ngram-ids` by default, `runc` to check the suite against Docker's own runtime).
//!
//! Every container gets a unique name and the label `ngram-ids.e2e=1`, and is removed by the
//! [`Container`] guard when the test ends, whether it passed or panicked.

pub mod containerd;
pub mod ecosystem;
pub mod ids;

use std::fmt;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// The busybox image built by `scripts/build-images.sh`.
pub const BUSYBOX: &str = "ngram-busybox";
/// The nginx image built by `scripts/build-images.sh`; serves [`NGINX_INDEX`] on port 80.
pub const NGINX: &str = "ngram-nginx";
/// [`NGINX`] plus fcgiwrap and a deliberately vulnerable `/cgi-bin/run?CMD` (runs the
/// URL-decoded query string with `sh -c`, as www-data); the attack target of the IDS tests.
pub const NGINX_CGI: &str = "ngram-nginx-cgi";
/// The index page of [`NGINX`].
pub const NGINX_INDEX: &str = "ngram-ids e2e nginx";
/// Label put on every container the suite creates.
pub const LABEL: &str = "ngram-ids.e2e=1";
/// Time limit of one `docker` command unless a test says otherwise.
pub const DOCKER_TIMEOUT: Duration = Duration::from_secs(60);

/// What a finished command left behind.
#[derive(Debug, Clone)]
pub struct Output {
    /// The command line, for messages.
    pub cmdline: String,
    /// Exit code; `None` when killed by a signal.
    pub code: Option<i32>,
    /// Everything written to stdout.
    pub stdout: String,
    /// Everything written to stderr.
    pub stderr: String,
    /// How long it ran.
    pub elapsed: Duration,
}

impl Output {
    /// Panics with the whole output unless the command exited with 0.
    #[track_caller]
    pub fn success(&self) -> &Self {
        assert_eq!(self.code, Some(0), "command failed: {self}");
        self
    }

    /// Panics with the whole output unless the command exited with `code`.
    #[track_caller]
    pub fn code_is(&self, code: i32) -> &Self {
        assert_eq!(self.code, Some(code), "unexpected exit code: {self}");
        self
    }

    /// stdout without surrounding white space.
    pub fn out(&self) -> &str {
        self.stdout.trim()
    }

    /// Panics unless the Docker client printed exactly one error line (on either stream,
    /// besides its "Run 'docker … --help'" hint) and it is the runtime's error: nothing the
    /// runtime wrote during create or exec leaked into the container's streams.
    #[track_caller]
    pub fn only_the_runtime_error(&self) -> &Self {
        let lines: Vec<&str> = self
            .stdout
            .lines()
            .chain(self.stderr.lines())
            .filter(|l| !l.trim().is_empty() && !l.starts_with("Run 'docker "))
            .collect();
        assert_eq!(lines.len(), 1, "more than the runtime's error: {self}");
        assert!(
            lines[0].contains("OCI runtime"),
            "not the runtime's error: {self}"
        );
        self
    }
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` exited with {:?} after {:.1?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.cmdline, self.code, self.elapsed, self.stdout, self.stderr
        )
    }
}

/// A running command whose output is collected in the background.
#[derive(Debug)]
pub struct Running {
    cmdline: String,
    child: Child,
    started: Instant,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    readers: Vec<JoinHandle<()>>,
}

impl Running {
    /// Starts `cmd` with piped stdin, stdout and stderr.
    pub fn spawn(mut cmd: Command) -> Self {
        let cmdline = format!("{cmd:?}").replace('"', "");
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {cmdline}: {e}"));
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let readers = vec![
            collect(child.stdout.take().expect("piped stdout"), stdout.clone()),
            collect(child.stderr.take().expect("piped stderr"), stderr.clone()),
        ];
        Self {
            cmdline,
            child,
            started: Instant::now(),
            stdout,
            stderr,
            readers,
        }
    }

    /// Writes to the command's stdin.
    pub fn write_stdin(&mut self, data: &[u8]) {
        let stdin = self.child.stdin.as_mut().expect("stdin still open");
        stdin
            .write_all(data)
            .and_then(|()| stdin.flush())
            .unwrap_or_else(|e| panic!("writing to the stdin of {}: {e}", self.cmdline));
    }

    /// Closes the command's stdin.
    pub fn close_stdin(&mut self) {
        drop(self.child.stdin.take());
    }

    /// What the command printed on stdout so far.
    pub fn stdout_so_far(&self) -> String {
        String::from_utf8_lossy(&self.stdout.lock().expect("stdout buffer")).into_owned()
    }

    /// Waits until stdout contains `needle`; panics after `timeout`.
    #[track_caller]
    pub fn wait_for_stdout(&mut self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.stdout_so_far().contains(needle) {
            if Instant::now() >= deadline {
                let out = self.kill();
                panic!("{needle:?} did not appear on stdout within {timeout:?}: {out}");
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the command to exit; kills it and panics after `timeout`.
    #[track_caller]
    pub fn wait(mut self, timeout: Duration) -> Output {
        self.close_stdin();
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) => return self.finish(),
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(10)),
                Ok(None) => {
                    let out = self.kill();
                    panic!("timed out after {timeout:?}: {out}");
                }
                Err(e) => panic!("waiting for {}: {e}", self.cmdline),
            }
        }
    }

    /// Kills the command and returns what it printed.
    pub fn kill(&mut self) -> Output {
        let _ = self.child.kill();
        self.finish()
    }

    fn finish(&mut self) -> Output {
        let status = self.child.wait().expect("wait for child");
        let elapsed = self.started.elapsed();
        // The pipes close when the command (and whatever inherited them) is gone.
        let readers_deadline = Instant::now() + Duration::from_secs(5);
        while self.readers.iter().any(|r| !r.is_finished()) && Instant::now() < readers_deadline {
            thread::sleep(Duration::from_millis(10));
        }
        for reader in self.readers.drain(..) {
            if reader.is_finished() {
                let _ = reader.join();
            }
        }
        let text = |buf: &Arc<Mutex<Vec<u8>>>| {
            String::from_utf8_lossy(&buf.lock().expect("output buffer")).into_owned()
        };
        Output {
            cmdline: self.cmdline.clone(),
            code: status.code(),
            stdout: text(&self.stdout),
            stderr: text(&self.stderr),
            elapsed,
        }
    }
}

fn collect(mut pipe: impl Read + Send + 'static, buf: Arc<Mutex<Vec<u8>>>) -> JoinHandle<()> {
    thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        while let Ok(n) = pipe.read(&mut chunk) {
            if n == 0 {
                break;
            }
            buf.lock()
                .expect("output buffer")
                .extend_from_slice(&chunk[..n]);
        }
    })
}

/// Runs `cmd` to completion with `stdin` as its input; panics after `timeout`.
#[track_caller]
pub fn run_cmd(cmd: Command, stdin: &[u8], timeout: Duration) -> Output {
    let mut running = Running::spawn(cmd);
    if !stdin.is_empty() {
        running.write_stdin(stdin);
    }
    running.wait(timeout)
}

/// The suite's context: which runtime the containers run with and which test is running.
#[derive(Debug)]
pub struct E2e {
    runtime: String,
    test: String,
    /// `ngram-ids.tracer=…` for containers of the ngram-ids runtimes, from
    /// `NGRAM_IDS_E2E_TRACER` (notify or ptrace; unset: the runtime's default, notify).
    tracer_label: Option<String>,
}

/// Returns the context when the e2e tests are enabled; otherwise prints why `test` is skipped.
pub fn setup(test: &str) -> Option<E2e> {
    if std::env::var("NGRAM_IDS_E2E").as_deref() != Ok("1") {
        println!(
            "skipping e2e test {test}: NGRAM_IDS_E2E is not 1 \
             (run scripts/test-e2e.sh as root: it needs dockerd, the local images and the runtime)"
        );
        return None;
    }
    let runtime = std::env::var("NGRAM_IDS_E2E_RUNTIME").unwrap_or_else(|_| "ngram-ids".to_owned());
    let tracer_label = std::env::var("NGRAM_IDS_E2E_TRACER")
        .ok()
        .filter(|t| !t.is_empty())
        .map(|t| format!("ngram-ids.tracer={t}"));
    eprintln!(
        "e2e test {test} with --runtime={runtime}{}",
        tracer_label
            .as_deref()
            .map(|l| format!(" --label {l}"))
            .unwrap_or_default()
    );
    Some(E2e {
        runtime,
        test: test.to_owned(),
        tracer_label,
    })
}

static NEXT: AtomicU32 = AtomicU32::new(0);

impl E2e {
    /// The runtime under test (`ngram-ids` or `runc`).
    pub fn runtime(&self) -> &str {
        &self.runtime
    }

    /// A fresh container name for this test, removed (`docker rm -f`) when the guard drops.
    pub fn container(&self) -> Container {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        Container {
            name: format!(
                "ngram-e2e-{}-{}-{n}",
                self.test.replace(|c: char| !c.is_ascii_alphanumeric(), "-"),
                std::process::id()
            ),
        }
    }

    /// `docker ARGS` with the default time limit.
    #[track_caller]
    pub fn docker(&self, args: &[&str]) -> Output {
        docker(args, b"", DOCKER_TIMEOUT)
    }

    /// `docker ARGS` with `stdin` as input.
    #[track_caller]
    pub fn docker_stdin(&self, args: &[&str], stdin: &[u8]) -> Output {
        docker(args, stdin, DOCKER_TIMEOUT)
    }

    /// The arguments of `docker run` up to the options: runtime, name and label.
    pub fn run_args<'a>(&'a self, c: &'a Container) -> Vec<&'a str> {
        self.run_args_with(&self.runtime, c)
    }

    /// [`E2e::run_args`] with another runtime than the one under test.
    pub fn run_args_with<'a>(&'a self, runtime: &'a str, c: &'a Container) -> Vec<&'a str> {
        let mut args = vec![
            "run",
            "--runtime",
            runtime,
            "--name",
            &c.name,
            "--label",
            LABEL,
        ];
        if let Some(l) = self.tracer_label.as_deref() {
            if runtime.starts_with("ngram-ids") {
                args.extend_from_slice(&["--label", l]);
            }
        }
        args
    }

    /// `docker run --runtime R --name C --label L ARGS` (ARGS: options, image, command).
    #[track_caller]
    pub fn run(&self, c: &Container, args: &[&str]) -> Output {
        self.run_with(&self.runtime, c, args)
    }

    /// [`E2e::run`] with another runtime than the one under test.
    #[track_caller]
    pub fn run_with(&self, runtime: &str, c: &Container, args: &[&str]) -> Output {
        let mut all = self.run_args_with(runtime, c);
        all.extend_from_slice(args);
        self.docker(&all)
    }

    /// `docker run -d ...` that must succeed; waits until the container is running.
    #[track_caller]
    pub fn run_detached(&self, c: &Container, args: &[&str]) {
        self.run_detached_with(&self.runtime, c, args);
    }

    /// [`E2e::run_detached`] with another runtime than the one under test.
    #[track_caller]
    pub fn run_detached_with(&self, runtime: &str, c: &Container, args: &[&str]) {
        let mut all = vec!["-d"];
        all.extend_from_slice(args);
        self.run_with(runtime, c, &all).success();
        self.wait_until(&format!("{c} is running"), Duration::from_secs(30), || {
            self.inspect(c, "{{.State.Running}}") == "true"
        });
        assert_eq!(
            self.inspect(c, "{{.HostConfig.Runtime}}"),
            runtime,
            "{c} runs with another runtime"
        );
    }

    /// The full (64 hex digits) id of the container.
    #[track_caller]
    pub fn container_id(&self, c: &Container) -> String {
        let id = self.inspect(c, "{{.Id}}");
        assert_eq!(id.len(), 64, "odd container id {id:?} of {c}");
        id
    }

    /// `docker inspect --format FORMAT C`, trimmed; panics if the container does not exist.
    #[track_caller]
    pub fn inspect(&self, c: &Container, format: &str) -> String {
        self.docker(&["inspect", "--format", format, &c.name])
            .success()
            .out()
            .to_owned()
    }

    /// `docker logs C`: (stdout, stderr).
    #[track_caller]
    pub fn logs(&self, c: &Container) -> (String, String) {
        let out = self.docker(&["logs", &c.name]);
        out.success();
        (out.stdout, out.stderr)
    }

    /// Polls `cond` every 100 ms; panics with `what` after `timeout`.
    #[track_caller]
    pub fn wait_until(&self, what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + timeout;
        while !cond() {
            assert!(
                Instant::now() < deadline,
                "timed out after {timeout:?} waiting until {what} (runtime {})",
                self.runtime
            );
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until `docker logs C` (stdout) contains `needle`, and returns the logs.
    #[track_caller]
    pub fn wait_for_log(&self, c: &Container, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let (out, err) = self.logs(c);
            if out.contains(needle) {
                return out;
            }
            if Instant::now() >= deadline {
                panic!(
                    "{needle:?} did not appear in the logs of {c} within {timeout:?} \
                     (runtime {}): stdout {out:?}, stderr {err:?}, state {}",
                    self.runtime,
                    self.inspect(c, "{{json .State}}")
                );
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// The host pid of the container's init process.
    #[track_caller]
    pub fn pid(&self, c: &Container) -> u32 {
        let pid = self.inspect(c, "{{.State.Pid}}");
        pid.parse()
            .unwrap_or_else(|e| panic!("pid {pid:?} of {c}: {e}"))
    }
}

/// `docker ARGS` with `stdin` as input and a time limit.
#[track_caller]
pub fn docker(args: &[&str], stdin: &[u8], timeout: Duration) -> Output {
    let mut cmd = Command::new("docker");
    cmd.args(args);
    run_cmd(cmd, stdin, timeout)
}

/// A container name owned by one test; the container is removed when this drops.
#[derive(Debug)]
pub struct Container {
    /// The unique name given with `--name`.
    pub name: String,
}

impl fmt::Display for Container {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

impl AsRef<str> for Container {
    fn as_ref(&self) -> &str {
        &self.name
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let mut cmd = Command::new("docker");
        cmd.args(["rm", "--force", "--volumes", &self.name]);
        let mut running = Running::spawn(cmd);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match running.child.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
                Ok(None) => {
                    eprintln!(
                        "warning: `docker rm -f {}` hung; container left behind",
                        self.name
                    );
                    running.kill();
                    break;
                }
            }
        }
    }
}

/// A file of the container's cgroup as the host sees it, read from `/proc/PID/cgroup`:
/// `v1` = (controller, file) on cgroup v1 hosts, `v2` = file on the unified hierarchy.
pub fn host_cgroup_file(pid: u32, v1: (&str, &str), v2: &str) -> PathBuf {
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .unwrap_or_else(|e| panic!("reading /proc/{pid}/cgroup: {e}"));
    let unified = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    for line in cgroups.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next(), parts.next(), parts.next());
        let (Some(controllers), Some(path)) = (controllers, path) else {
            continue;
        };
        let path = path.trim_start_matches('/');
        if unified && controllers.is_empty() {
            return Path::new("/sys/fs/cgroup").join(path).join(v2);
        }
        if !unified && controllers.split(',').any(|c| c == v1.0) {
            return Path::new("/sys/fs/cgroup").join(v1.0).join(path).join(v1.1);
        }
    }
    panic!("no {} cgroup for pid {pid} in:\n{cgroups}", v1.0);
}

/// Reads a cgroup file of the container's init (see [`host_cgroup_file`]), trimmed.
pub fn read_host_cgroup(pid: u32, v1: (&str, &str), v2: &str) -> String {
    let path = host_cgroup_file(pid, v1, v2);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
        .trim()
        .to_owned()
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local address").port()
}

/// `GET /` over HTTP/1.0 on 127.0.0.1:PORT: (status line, body), or the error.
pub fn http_get(port: u16) -> Result<(String, String), String> {
    http_get_path(port, "/")
}

/// `GET PATH` (with its query string, already URL-encoded) over HTTP/1.0 on 127.0.0.1:PORT:
/// (status line, body), or the error.
pub fn http_get_path(port: u16, path: &str) -> Result<(String, String), String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
        .map_err(|e| e.to_string())?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .map_err(|e| e.to_string())?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no HTTP header in {response:?}"))?;
    let status = head.lines().next().unwrap_or_default().to_owned();
    Ok((status, body.to_owned()))
}

/// A temporary host directory, removed on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates `/tmp/ngram-e2e-<tag>-<pid>-<n>`.
    pub fn new(tag: &str) -> Self {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("ngram-e2e-{tag}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("creating {}: {e}", path.display()));
        Self(path)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
