//! A third-party gRPC client against `cricket runtime`, standing in for crictl and kubelet:
//! Python's grpcio (gRPC core) from PyPI, with stubs generated here from the vendored
//! api.proto, runs a crictl-like session (tests/clients/cri_session.py) twice — once with the
//! authority grpcio sends by itself (the percent-encoded socket path), once with the raw
//! socket path that grpc-go dialled with a bare path sends — against a plain `cricket runtime`
//! with no pause image. Then once more against a runtime serving plain h2
//! (fault `no-authority-fix`), which must reset the very first call: the session test bites.
//!
//! The client comes from `bash ci/setup.sh --test` (a virtual environment in `ci/.venv`);
//! without it this test fails and says so, it never skips.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn python() -> PathBuf {
    let py = workspace().join("ci/.venv/bin/python");
    assert!(
        py.exists(),
        "{} is missing: the Python test clients are installed by `bash ci/setup.sh --test`",
        py.display()
    );
    py
}

/// `api_pb2.py` and `api_pb2_grpc.py` from our api.proto, by grpcio-tools' protoc.
fn stubs(py: &Path, dir: &Path) {
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

struct Runtime {
    child: Child,
    socket: PathBuf,
    root: PathBuf,
}

impl Runtime {
    fn start(dir: &Path, faults: &str) -> Self {
        let socket = dir.join("cricket.sock");
        let root = dir.join("root");
        let log = std::fs::File::create(dir.join("runtime.log")).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_cricket"))
            .args(["runtime", "--socket"])
            .arg(&socket)
            .arg("--root")
            .arg(&root)
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
        // SAFETY: SIGTERM to the runtime this test started.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
        let _ = cricket_harness::target::remove_state_dir(&self.root);
    }
}

fn session(
    py: &Path,
    stubs: &Path,
    rt: &Runtime,
    image: &str,
    authority: &str,
    run: &str,
) -> Output {
    Command::new(py)
        .arg(workspace().join("tests/clients/cri_session.py"))
        .arg("--stubs")
        .arg(stubs)
        .arg("--socket")
        .arg(&rt.socket)
        .args(["--image", image, "--authority", authority])
        .arg("--log-dir")
        .arg(rt.root.with_file_name(format!("logs-{run}")))
        .args(["--label", &format!("cricket.run={run}")])
        .output()
        .expect("the Python session runs")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn grpcio_drives_a_crictl_session_against_cricket_runtime() {
    let py = python();
    let dir = tempfile::tempdir().expect("tempdir");
    let stub_dir = dir.path().join("stubs");
    std::fs::create_dir_all(&stub_dir).expect("stub dir");
    stubs(&py, &stub_dir);
    let rt_tokio = tokio::runtime::Runtime::new().expect("tokio");
    let fixtures = rt_tokio
        .block_on(cricket_harness::session::start_fixtures(None))
        .expect("fixture registry");
    let image = fixtures
        .catalog
        .get("probe")
        .expect("probe image")
        .to_string();

    let rt = Runtime::start(dir.path(), "");
    for (authority, run) in [("default", "py-default"), ("path", "py-path")] {
        let out = session(&py, &stub_dir, &rt, &image, authority, run);
        assert!(
            out.status.success(),
            "grpcio session with the {authority} authority failed:\n{}\nruntime log:\n{}",
            text(&out),
            std::fs::read_to_string(dir.path().join("runtime.log")).unwrap_or_default()
        );
        assert!(
            text(&out).contains(&format!("OK {authority}:")),
            "{}",
            text(&out)
        );
    }
    drop(rt);

    // Without the authority adapter (plain h2, what a tonic server does by itself), the same
    // client cannot even ask for the version.
    let plain = tempfile::tempdir().expect("tempdir");
    let rt = Runtime::start(plain.path(), "no-authority-fix");
    let out = session(&py, &stub_dir, &rt, &image, "path", "py-plain");
    let t = text(&out);
    assert!(!out.status.success(), "plain h2 served grpcio: {t}");
    assert!(
        t.contains("FAIL [Version]") && t.contains("RST_STREAM"),
        "expected Version to be reset by h2: {t}"
    );
    drop(rt);
    drop(fixtures);
}
