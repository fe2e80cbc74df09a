//! Every case can fail: each fault switch of the bundled runtime breaks one rule on purpose,
//! and the case enforcing that rule must report it. Each run focuses on that case; a broken
//! runtime that still passed it would fail this test.

use std::process::Command;

/// (fault, the case that must catch it). `start-slow` breaks speed, not a rule: tests/bench.rs
/// proves a baseline and `cricket diff` catch it.
const FAULTS: &[(&str, &str)] = &[
    ("version-bad-semver", "runtime.version.fields"),
    ("version-wrong-api", "runtime.version.fields"),
    ("status-no-network-ready", "runtime.status.conditions"),
    ("status-lowercase-reason", "runtime.status.conditions"),
    ("status-info-always", "runtime.status.conditions"),
    ("status-info-not-json", "runtime.status.verbose_info"),
    ("unknown-method-hangs", "runtime.unknown_method"),
    ("list-ignores-state", "container.list.filters"),
    (
        "stop-errors-when-exited",
        "idempotence.container.stop_twice",
    ),
    ("exec-drops-stderr", "exec_sync.output.stderr_separate"),
    ("log-no-partial", "logs.partial.no_newline"),
    (
        "pod-annotations-dropped",
        "pod.sandbox.attributes_preserved",
    ),
    ("image-status-no-tags", "image.pull.by_tag"),
    (
        "remove-keeps-other-tags",
        "image.remove.by_one_tag_removes_all",
    ),
    ("stop-ignores-grace", "container.stop.grace_then_kill"),
];

#[test]
fn each_fault_is_caught_by_its_case() {
    for (fault, case) in FAULTS {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = Command::new(env!("CARGO_BIN_EXE_cricket"))
            .args([
                "run",
                "--focus",
                case,
                "--rpc-timeout",
                "2s",
                "--report-dir",
            ])
            .arg(dir.path())
            .env("CRICKET_RUNTIME_FAULTS", fault)
            .output()
            .expect("cricket runs");
        assert_eq!(
            out.status.code(),
            Some(1),
            "{fault}: a broken runtime must fail the run"
        );
        let doc: serde_json::Value = serde_json::from_slice(
            &std::fs::read(dir.path().join("results.json")).expect("results"),
        )
        .expect("json");
        let failed: Vec<&str> = doc["cases"]
            .as_array()
            .expect("cases")
            .iter()
            .filter(|c| c["outcome"] == "fail")
            .filter_map(|c| c["id"].as_str())
            .collect();
        assert_eq!(failed, vec![*case], "fault {fault}");
    }
}

#[test]
fn unknown_fault_names_are_refused() {
    let out = Command::new(env!("CARGO_BIN_EXE_cricket"))
        .args(["runtime", "--socket", "/tmp/cricket-never.sock"])
        .env("CRICKET_RUNTIME_FAULTS", "no-such-fault")
        .output()
        .expect("cricket runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-fault"));
}
