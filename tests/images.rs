//! The fixture images through third-party tools: skopeo reads cricket's registry and its OCI
//! layout export, and `cricket images push` fills Debian's docker-registry. Digests must match
//! what `cricket images list` prints, everywhere.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn cricket(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_cricket"))
        .args(args)
        .output()
        .expect("cricket runs")
}

fn listed_digests() -> HashMap<String, String> {
    let out = cricket(&["images", "list", "--format", "json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let items: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).expect("json");
    items
        .iter()
        .map(|i| {
            (
                i["name"].as_str().expect("name").to_string(),
                i["digest"].as_str().expect("digest").to_string(),
            )
        })
        .collect()
}

fn skopeo_digest(args: &[&str]) -> String {
    let out = Command::new("skopeo")
        .arg("inspect")
        .args(args)
        .output()
        .expect("skopeo is installed by ci/setup.sh (the README's test command runs it)");
    assert!(
        out.status.success(),
        "skopeo inspect {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("skopeo json");
    v["Digest"].as_str().expect("Digest").to_string()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

fn wait_port(port: u16, child: &mut Child) {
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            child.try_wait().expect("wait").is_none(),
            "server exited before listening on {port}"
        );
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "nothing listens on {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn image_list_is_stable_and_complete() {
    let a = listed_digests();
    let b = listed_digests();
    assert_eq!(a, b, "two builds must give the same digests");
    for name in [
        "pause",
        "probe",
        "multiarch",
        "large",
        "hostile-digest",
        "user-1002",
        "private",
    ] {
        assert!(a.contains_key(name), "fixture {name} missing");
    }
}

#[test]
fn skopeo_reads_the_registry_and_the_export() {
    let digests = listed_digests();
    let port = free_port();
    let mut reg = Killed(
        Command::new(env!("CARGO_BIN_EXE_cricket"))
            .args(["registry", "--listen", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .spawn()
            .expect("cricket registry"),
    );
    wait_port(port, &mut reg.0);
    let probe = skopeo_digest(&[
        "--tls-verify=false",
        &format!("docker://127.0.0.1:{port}/cricket/probe:1"),
    ]);
    assert_eq!(probe, digests["probe"]);
    // Through the index, skopeo resolves this machine's platform; the image digest is then the
    // amd64 child, so compare the raw index digest instead.
    let raw = Command::new("skopeo")
        .args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://127.0.0.1:{port}/cricket/multiarch:1"),
        ])
        .output()
        .expect("skopeo");
    assert!(raw.status.success());
    assert_eq!(
        cricket_fixtures::sha256_digest(&raw.stdout),
        digests["multiarch"]
    );
    let private = Command::new("skopeo")
        .args([
            "inspect",
            "--tls-verify=false",
            &format!("docker://127.0.0.1:{port}/cricket/private:1"),
        ])
        .output()
        .expect("skopeo");
    assert!(
        !private.status.success(),
        "the private repository must refuse anonymous pulls"
    );
    let authed = skopeo_digest(&[
        "--tls-verify=false",
        "--creds",
        "cricket:cricket-secret",
        &format!("docker://127.0.0.1:{port}/cricket/private:1"),
    ]);
    assert_eq!(authed, digests["private"]);

    let dir = tempfile::tempdir().expect("tempdir");
    let out = cricket(&["images", "export", dir.path().to_str().expect("utf-8")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let exported = skopeo_digest(&[&format!("oci:{}:cricket/probe:1", dir.path().display())]);
    assert_eq!(exported, digests["probe"]);
}

#[test]
fn push_fills_a_real_registry() {
    let digests = listed_digests();
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let config = dir.path().join("config.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        ),
    )
    .expect("config");
    let mut reg = Killed(
        Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry is installed by ci/setup.sh"),
    );
    wait_port(port, &mut reg.0);
    let out = cricket(&["images", "push", &format!("127.0.0.1:{port}")]);
    assert!(
        out.status.success(),
        "push: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("pushed"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    for name in ["probe", "pause", "user-1002"] {
        let d = skopeo_digest(&[
            "--tls-verify=false",
            &format!("docker://127.0.0.1:{port}/cricket/{name}:1"),
        ]);
        assert_eq!(d, digests[name], "{name} after push");
    }
    // A second push finds every blob already there.
    let again = cricket(&["images", "push", &format!("127.0.0.1:{port}")]);
    assert!(again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stdout).contains(" 0 blobs uploaded"),
        "{}",
        String::from_utf8_lossy(&again.stdout)
    );
    let bad = cricket(&["images", "push", "https://127.0.0.1:1"]);
    assert_eq!(bad.status.code(), Some(2));
}
