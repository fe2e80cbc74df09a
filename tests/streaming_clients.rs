//! Streaming with clients cricket did not write: grpcio asks `cricket runtime` for Exec, Attach
//! and PortForward URLs; websocket-client (PyPI) runs exec in binary, base64 and v5 framing and
//! a port-forward over WebSocket; npm's spdy-transport under Node runs exec with stdin, exit
//! codes, a port-forward pair and an attach over SPDY/3.1 (tests/clients/streaming_session.py,
//! tests/clients/spdy_client.js). Then the same session against a runtime that loses exit codes
//! (fault `exec-loses-exit-code`) must fail in both clients: the checks bite. The runtime runs
//! with a 3 s `--stream-idle-timeout`, and a silent session in each protocol must end after it.
//!
//! The clients come from `bash ci/setup.sh --test` (ci/.venv, ci/node); without them this test
//! fails and says so, it never skips.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod support;
use support::{ClientSetup, Runtime, text, workspace};

fn node_modules() -> PathBuf {
    let m = workspace().join("ci/node/node_modules");
    assert!(
        m.join("spdy-transport").exists(),
        "{} has no spdy-transport: the Node test clients are installed by `bash ci/setup.sh --test`",
        m.display()
    );
    m
}

/// The runtime's idle timeout in these runs, and what the session is told to expect.
const IDLE: &str = "3";

fn session(py: &Path, stub_dir: &Path, rt: &Runtime, image: &str, run: &str) -> Output {
    Command::new(py)
        .arg(workspace().join("tests/clients/streaming_session.py"))
        .arg("--stubs")
        .arg(stub_dir)
        .arg("--socket")
        .arg(&rt.socket)
        .args(["--image", image])
        .arg("--log-dir")
        .arg(rt.root.with_file_name(format!("logs-{run}")))
        .args(["--label", &format!("cricket.run={run}")])
        .args(["--node", "node", "--spdy-client"])
        .arg(workspace().join("tests/clients/spdy_client.js"))
        .args(["--idle", IDLE])
        .env("NODE_PATH", node_modules())
        .output()
        .expect("the Python session runs")
}

#[test]
fn websocket_client_and_spdy_transport_stream_through_cricket_runtime() {
    let dir = tempfile::tempdir().expect("tempdir");
    let c = ClientSetup::new(dir.path());
    let (py, stub_dir, image) = (&c.py, &c.stub_dir, &c.image);

    let idle = format!("{IDLE}s");
    let flags = ["--stream-idle-timeout", idle.as_str()];
    let rt = Runtime::start(dir.path(), "", &flags);
    let out = session(py, stub_dir, &rt, image, "stream-ok");
    assert!(
        out.status.success(),
        "streaming session failed:\n{}\nruntime log:\n{}",
        text(&out),
        std::fs::read_to_string(dir.path().join("runtime.log")).unwrap_or_default()
    );
    drop(rt);

    let broken = tempfile::tempdir().expect("tempdir");
    let rt = Runtime::start(broken.path(), "exec-loses-exit-code", &flags);
    let out = session(py, stub_dir, &rt, image, "stream-broken");
    let t = text(&out);
    assert!(
        !out.status.success(),
        "a runtime losing exit codes passed: {t}"
    );
    for step in ["FAIL [ws exec v4.channel.k8s.io]", "FAIL [spdy exec exit]"] {
        assert!(t.contains(step), "expected {step:?} in:\n{t}");
    }
    for step in [
        "ok [spdy exec stdin]",
        "ok [ws exec idle]",
        "ok [spdy exec idle]",
    ] {
        assert!(
            t.contains(step),
            "a step the fault leaves alone failed ({step}):\n{t}"
        );
    }
    drop(rt);
    drop(c);
}
