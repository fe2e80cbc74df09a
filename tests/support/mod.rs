//! What the tests driving third-party clients share: the client environments `ci/setup.sh
//! --test` installs, stubs generated from the vendored api.proto, and a plain `cricket
//! runtime` on a socket of its own.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn python() -> PathBuf {
    let py = workspace().join("ci/.venv/bin/python");
    assert!(
        py.exists(),
        "{} is missing: the Python test clients are installed by `bash ci/setup.sh --test`",
        py.display()
    );
    py
}

/// `api_pb2.py` and `api_pb2_grpc.py` from our api.proto, by grpcio-tools' protoc.
pub fn stubs(py: &Path, dir: &Path) {
    let out = Command::new(py)
        .args(["-m", "grpc_tools.protoc", "-I"])
        .arg(workspace().join("proto/runtime/v1"))
        .arg(format!("--python_out={}", dir.display()))
        .arg(format!("--grpc_python_out={}", dir.display()))
        .arg("api.proto")
        .output()
        .expect("grpc_tools.protoc runs");
    assert!(
        out.status.success(),
        "generating Python stubs failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What a client test starts from: the venv's Python with stubs generated into `dir/stubs`,
/// the fixture registry, and the probe image's reference in it.
pub struct ClientSetup {
    pub py: PathBuf,
    pub stub_dir: PathBuf,
    pub image: String,
    _fixtures: cricket_harness::session::Fixtures,
    // Dropped after the fixture registry it serves.
    _tokio: tokio::runtime::Runtime,
}

impl ClientSetup {
    pub fn new(dir: &Path) -> Self {
        let py = python();
        let stub_dir = dir.join("stubs");
        std::fs::create_dir_all(&stub_dir).expect("stub dir");
        stubs(&py, &stub_dir);
        let tokio = tokio::runtime::Runtime::new().expect("tokio");
        let fixtures = tokio
            .block_on(cricket_harness::session::start_fixtures(None))
            .expect("fixture registry");
        let image = fixtures
            .catalog
            .get("probe")
            .expect("probe image")
            .to_string();
        Self {
            py,
            stub_dir,
            image,
            _fixtures: fixtures,
            _tokio: tokio,
        }
    }
}

pub struct Runtime {
    child: Child,
    pub socket: PathBuf,
    pub root: PathBuf,
}

impl Runtime {
    /// `cricket runtime` with `faults` and extra flags.
    pub fn start(dir: &Path, faults: &str, flags: &[&str]) -> Self {
        let socket = dir.join("cricket.sock");
        let root = dir.join("root");
        let log = std::fs::File::create(dir.join("runtime.log")).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_cricket"))
            .args(["runtime", "--socket"])
            .arg(&socket)
            .arg("--root")
            .arg(&root)
            .args(flags)
            .env("CRICKET_RUNTIME_FAULTS", faults)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("cricket runtime starts");
        let start = Instant::now();
        while std::os::unix::net::UnixStream::connect(&socket).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "cricket runtime did not listen on {} within 30s",
                socket.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Self {
            child,
            socket,
            root,
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        use cricket_harness::target::{pids_in_cgroups_naming, pids_with_arg};
        // A test that failed midway leaves pods behind, and their shims and processes outlive
        // the runtime (by design: they survive its restarts). Found by what names this root:
        // shims by their spec path, processes by the id prefix in their cgroup's name.
        let ids: Vec<String> = ["pods", "containers"]
            .iter()
            .filter_map(|d| std::fs::read_dir(self.root.join(d)).ok())
            .flatten()
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().chars().take(12).collect())
            .collect();
        let mut left = pids_in_cgroups_naming(&ids);
        left.extend(pids_with_arg(&self.root.display().to_string()));
        left.retain(|p| *p != self.child.id());
        // SAFETY: SIGTERM to the runtime this test started.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
        for pid in left {
            // SAFETY: SIGKILL to a process of this test's runtime.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
        let _ = cricket_harness::target::remove_state_dir(&self.root);
    }
}

pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}
