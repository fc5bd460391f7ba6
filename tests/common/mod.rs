//! Shared by the integration tests: a real berthd on its own temporary socket,
//! data root and exec root, stopped (by pid) and cleaned up even when a test fails.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The project's directory, as cargo gives it when it runs the test (the
/// compile-time value names wherever the binary was built, which a shared
/// target dir may have done from another clone).
pub fn project_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

pub const BERTHD: &str = env!("CARGO_BIN_EXE_berthd");

pub struct TestDaemon {
    pub dir: tempfile::TempDir,
    pub child: Option<Child>,
    pub extra_args: Vec<String>,
}

impl TestDaemon {
    /// Starts berthd on fresh temporary directories and waits until it answers.
    pub fn start() -> TestDaemon {
        Self::start_with(&[])
    }

    pub fn start_with(extra: &[&str]) -> TestDaemon {
        let dir = tempfile::Builder::new()
            .prefix("berth-test-")
            .tempdir()
            .expect("tempdir");
        let mut d = TestDaemon {
            dir,
            child: None,
            extra_args: extra.iter().map(|s| s.to_string()).collect(),
        };
        d.spawn();
        d
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("berth.sock")
    }
    pub fn data_root(&self) -> PathBuf {
        self.dir.path().join("data")
    }
    pub fn exec_root(&self) -> PathBuf {
        self.dir.path().join("exec")
    }
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("berthd.log")
    }
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn base_args(&self) -> Vec<String> {
        vec![
            "-H".into(),
            format!("unix://{}", self.socket().display()),
            "--data-root".into(),
            self.data_root().display().to_string(),
            "--exec-root".into(),
            self.exec_root().display().to_string(),
            "--config-file".into(),
            self.dir.path().join("daemon.json").display().to_string(),
            "--log-level".into(),
            "debug".into(),
        ]
    }

    /// (Re)starts the daemon process on the same directories.
    pub fn spawn(&mut self) {
        let cfg = self.dir.path().join("daemon.json");
        if !cfg.exists() {
            std::fs::write(&cfg, "{}").expect("write daemon.json");
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("log file");
        let child = Command::new(BERTHD)
            .args(self.base_args())
            .args(&self.extra_args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log clone"))
            .stderr(log)
            .spawn()
            .expect("spawn berthd");
        self.child = Some(child);
        self.wait_ready();
    }

    pub fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok((200, _, _)) = http(&self.socket(), "GET", "/_ping") {
                return;
            }
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("berthd exited early with {status}; log:\n{}", self.log());
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("berthd did not answer within 20 s; log:\n{}", self.log());
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("running").id() as i32
    }

    /// Sends `sig` and waits for the exit status.
    pub fn stop_with(&mut self, sig: i32) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        unsafe {
            libc::kill(child.id() as i32, sig);
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "berthd did not exit after signal {sig}; log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl TestDaemon {
    /// Ends every container this daemon left running (shims outlive the
    /// daemon): each init by the pid its shim wrote; then unmounts what stays
    /// mounted under the test's directory.
    pub fn stop_containers(&self) {
        let bundles = self.exec_root().join("containers");
        for entry in std::fs::read_dir(&bundles).into_iter().flatten().flatten() {
            if let Ok(pid) = std::fs::read_to_string(entry.path().join("init.pid")) {
                if let Ok(pid) = pid.trim().parse::<i32>() {
                    unsafe {
                        libc::kill(pid, libc::SIGKILL);
                    }
                }
            }
        }
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            let live = std::fs::read_dir(&bundles)
                .into_iter()
                .flatten()
                .flatten()
                .any(|e| e.path().join("shim.sock").exists());
            if !live {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let prefix = self.dir.path().display().to_string();
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        let mut ours: Vec<&str> = mounts
            .lines()
            .filter_map(|l| l.split(' ').nth(1))
            .filter(|m| m.starts_with(&prefix))
            .collect();
        ours.sort_by(|a, b| b.cmp(a));
        for m in ours {
            if let Ok(c) = std::ffi::CString::new(m) {
                unsafe {
                    libc::umount2(c.as_ptr(), libc::MNT_DETACH);
                }
            }
        }
    }
}

impl Drop for TestDaemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.stop_containers();
        self.network_cleanup();
    }
}

impl TestDaemon {
    /// Removes the bridges, firewall chains and namespace mounts this
    /// daemon made on the host (they outlive it, as dockerd's do).
    pub fn network_cleanup(&self) {
        network_cleanup(&self.data_root(), &self.exec_root());
    }
}

/// `berthd network-cleanup` for a daemon (stopped) of `data_root`.
pub fn network_cleanup(data_root: &Path, exec_root: &Path) {
    let _ = Command::new(BERTHD)
        .arg("network-cleanup")
        .arg("--data-root")
        .arg(data_root)
        .arg("--exec-root")
        .arg(exec_root)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// A bollard client of `d` (60 s timeout).
pub fn client(d: &TestDaemon) -> bollard::Docker {
    bollard::Docker::connect_with_unix(
        &d.socket().display().to_string(),
        60,
        bollard::API_DEFAULT_VERSION,
    )
    .expect("connect")
}

/// Pulls `image`; Ok(status lines) or Err(the error the stream or the API gave).
pub async fn pull(docker: &bollard::Docker, image: &str) -> Result<Vec<String>, String> {
    use futures_util::StreamExt;
    let opts = bollard::query_parameters::CreateImageOptionsBuilder::default()
        .from_image(image)
        .build();
    let mut stream = docker.create_image(Some(opts), None, None);
    let mut statuses = Vec::new();
    while let Some(item) = stream.next().await {
        match item {
            Ok(info) => statuses.push(format!(
                "{} {}",
                info.id.unwrap_or_default(),
                info.status.unwrap_or_default()
            )),
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(statuses)
}

/// A minimal HTTP/1.1 client over a unix socket: (status, headers, body).
pub fn http(
    socket: &Path,
    method: &str,
    path: &str,
) -> std::io::Result<(u16, Vec<(String, String)>, String)> {
    http_body(socket, method, path, &[])
}

/// As `http`, sending `body` (with its Content-Length).
pub fn http_body(
    socket: &Path,
    method: &str,
    path: &str,
    body: &[u8],
) -> std::io::Result<(u16, Vec<(String, String)>, String)> {
    let mut s = UnixStream::connect(socket)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: berth\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )?;
    s.write_all(body)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    parse_response(&raw)
}

pub fn parse_response(raw: &[u8]) -> std::io::Result<(u16, Vec<(String, String)>, String)> {
    let text = String::from_utf8_lossy(raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status line in {text:?}")))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Ok((status, headers, body.to_string()))
}

pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == &name.to_ascii_lowercase())
        .map(|(_, v)| v.as_str())
}

/// Runs berthd with `args` expecting it to exit by itself; returns (code, stderr).
pub fn run_berthd_expect_exit(args: &[&str], timeout: Duration) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let errf = dir.path().join("err");
    let mut child = Command::new(BERTHD)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&errf).expect("stderr file"))
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + timeout;
    let result = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break (
                status.code(),
                std::fs::read_to_string(&errf).unwrap_or_default(),
            );
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break (None, std::fs::read_to_string(&errf).unwrap_or_default());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // A daemon that got as far as its networks left them on the host.
    let arg = |name: &str| {
        args.iter()
            .position(|a| *a == name)
            .and_then(|i| args.get(i + 1))
            .map(PathBuf::from)
    };
    if let (Some(data), Some(exec)) = (arg("--data-root"), arg("--exec-root")) {
        network_cleanup(&data, &exec);
    }
    result
}

/// The reply lines of `docker` (the real CLI) against this daemon.
pub fn docker(socket: &Path, args: &[&str]) -> std::process::Output {
    Command::new("docker")
        .arg("-H")
        .arg(format!("unix://{}", socket.display()))
        .args(args)
        .env_remove("DOCKER_HOST")
        .env(
            "DOCKER_CONFIG",
            socket.parent().expect("dir").join("docker-config"),
        )
        .output()
        .expect("run docker CLI")
}

/// The project's test registry (docker-compat/lib/test-registry.sh): the CNCF
/// registry on a free loopback port with the fixture images; stopped on drop.
pub struct TestRegistry {
    pub dir: tempfile::TempDir,
    pub port: u16,
}

impl TestRegistry {
    pub fn start() -> TestRegistry {
        Self::start_env(&[])
    }

    /// A registry that requires `user`/`password`: `mode` is "basic" (htpasswd)
    /// or "token" (bearer tokens from the project's token server). Holds busybox.
    pub fn start_with_auth(mode: &str, user: &str, password: &str) -> TestRegistry {
        Self::start_env(&[
            ("BERTH_REGISTRY_AUTH", mode),
            ("BERTH_REGISTRY_USER", user),
            ("BERTH_REGISTRY_PASSWORD", password),
        ])
    }

    fn start_env(env: &[(&str, &str)]) -> TestRegistry {
        let dir = tempfile::Builder::new()
            .prefix("berth-registry-")
            .tempdir()
            .expect("tempdir");
        let script = project_dir().join("docker-compat/lib/test-registry.sh");
        let out = Command::new("bash")
            .arg(&script)
            .arg("start")
            .arg(dir.path().join("r"))
            .envs(env.iter().copied())
            .output()
            .expect("run test-registry.sh");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let port = stdout.lines().last().and_then(|l| l.trim().parse().ok());
        let reg = TestRegistry {
            dir,
            port: port.unwrap_or(0),
        };
        assert!(
            out.status.success() && port.is_some(),
            "test registry did not start: {}{}",
            stdout,
            String::from_utf8_lossy(&out.stderr)
        );
        reg
    }

    /// `127.0.0.1:PORT/library/NAME`
    pub fn image(&self, name: &str) -> String {
        format!("127.0.0.1:{}/library/{name}", self.port)
    }

    /// The misbehaving registry started alongside (bad-registry.py): its port.
    pub fn bad_port(&self) -> u16 {
        std::fs::read_to_string(self.dir.path().join("r/bad.port"))
            .ok()
            .and_then(|p| p.trim().parse().ok())
            .expect("bad registry port")
    }

    /// Digests of a fixture as built: (manifest digest, config digest = image ID).
    pub fn digests(&self, name: &str) -> (String, String) {
        let layout = self.dir.path().join("r/oci").join(name);
        let index: serde_json::Value =
            serde_json::from_slice(&std::fs::read(layout.join("index.json")).expect("index"))
                .expect("json");
        let manifest = index["manifests"][0]["digest"]
            .as_str()
            .expect("digest")
            .to_string();
        let m: serde_json::Value = serde_json::from_slice(
            &std::fs::read(
                layout
                    .join("blobs/sha256")
                    .join(manifest.trim_start_matches("sha256:")),
            )
            .expect("manifest"),
        )
        .expect("json");
        (
            manifest,
            m["config"]["digest"].as_str().expect("config").to_string(),
        )
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let script = project_dir().join("docker-compat/lib/test-registry.sh");
        let _ = Command::new("bash")
            .arg(script)
            .arg("stop")
            .arg(self.dir.path().join("r"))
            .status();
    }
}
