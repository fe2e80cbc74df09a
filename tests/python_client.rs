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

use std::path::Path;
use std::process::{Command, Output};

mod support;
use support::{ClientSetup, Runtime, text, workspace};

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

#[test]
fn grpcio_drives_a_crictl_session_against_cricket_runtime() {
    let dir = tempfile::tempdir().expect("tempdir");
    let c = ClientSetup::new(dir.path());
    let (py, stub_dir, image) = (&c.py, &c.stub_dir, &c.image);

    let rt = Runtime::start(dir.path(), "", &[]);
    for (authority, run) in [("default", "py-default"), ("path", "py-path")] {
        let out = session(py, stub_dir, &rt, image, authority, run);
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
    let rt = Runtime::start(plain.path(), "no-authority-fix", &[]);
    let out = session(py, stub_dir, &rt, image, "path", "py-plain");
    let t = text(&out);
    assert!(!out.status.success(), "plain h2 served grpcio: {t}");
    assert!(
        t.contains("FAIL [Version]") && t.contains("RST_STREAM"),
        "expected Version to be reset by h2: {t}"
    );
    drop(rt);

    // The session's own security checks bite: a runtime that loads no seccomp filter fails it
    // where the process reads its status, though every call was accepted.
    let unfiltered = tempfile::tempdir().expect("tempdir");
    let rt = Runtime::start(unfiltered.path(), "seccomp-not-loaded", &[]);
    let out = session(py, stub_dir, &rt, image, "default", "py-unfiltered");
    let t = text(&out);
    assert!(
        !out.status.success(),
        "an unfiltered runtime passed the grpcio session: {t}"
    );
    assert!(
        t.contains("FAIL [ExecSync(security status)]"),
        "expected the security status check to fail: {t}"
    );
    drop(rt);
    drop(c);
}
