//! The property suite end to end. Its oracle bites: with a fault switched on in the bundled
//! runtime, the sequential property finds it, shrinks it to a few calls and saves a replay file
//! that fails again on the broken runtime and passes on the healthy one. And it runs against
//! containerd to the end, whatever containerd's races make of the verdict.

use std::path::Path;
use std::process::{Command, Output};

fn cricket(args: &[&str], fault: Option<&str>) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cricket"));
    c.args(args);
    match fault {
        Some(f) => c.env("CRICKET_RUNTIME_FAULTS", f),
        None => c.env_remove("CRICKET_RUNTIME_FAULTS"),
    };
    c.output().expect("cricket runs")
}

fn text(o: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn results(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("results.json")).expect("results.json"))
        .expect("results.json is JSON")
}

fn case<'a>(doc: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    doc["cases"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["id"] == id))
        .unwrap_or_else(|| panic!("{id} not in results.json"))
}

/// (fault, the RPC the shrunk sequence must end on)
const FAULTS: &[(&str, &str)] = &[
    ("list-ignores-state", "list_containers"),
    ("stop-errors-when-exited", "stop_container"),
];

#[test]
fn faults_are_found_shrunk_and_replayed() {
    for (fault, last_call) in FAULTS {
        let dir = tempfile::tempdir().expect("tempdir");
        let report = dir.path().to_str().expect("utf-8");
        let out = cricket(
            &[
                "run",
                "--suite",
                "property",
                "--focus",
                "property.lifecycle.sequential",
                "--seed",
                "7",
                "--budget",
                "120s",
                "--report-dir",
                report,
            ],
            Some(fault),
        );
        assert_eq!(out.status.code(), Some(1), "{fault}: {}", text(&out));
        let doc = results(dir.path());
        let c = case(&doc, "property.lifecycle.sequential");
        assert_eq!(c["outcome"], "fail", "{fault}");
        let message = c["failure"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("api.proto: \""), "{fault}: {message}");
        let replay = c["notes"]["replay_file"]
            .as_str()
            .unwrap_or_else(|| panic!("{fault}: no replay file noted"));
        let file: serde_json::Value =
            serde_json::from_slice(&std::fs::read(replay).expect("replay file")).expect("json");
        let calls = file["sequences"][0].as_array().expect("one sequence");
        assert!(
            calls.len() <= 5,
            "{fault}: shrunk to {} calls: {message}",
            calls.len()
        );
        assert_eq!(
            calls.last().map(|c| c["call"].clone()),
            Some(serde_json::json!(last_call)),
            "{fault}: {message}"
        );

        // The file reproduces it on the broken runtime, and passes on the healthy one.
        let again = tempfile::tempdir().expect("tempdir");
        let args = [
            "run",
            "--replay",
            replay,
            "--report-dir",
            again.path().to_str().expect("utf-8"),
        ];
        let out = cricket(&args, Some(fault));
        assert_eq!(out.status.code(), Some(1), "{fault} replay: {}", text(&out));
        let healthy = tempfile::tempdir().expect("tempdir");
        let args = [
            "run",
            "--replay",
            replay,
            "--report-dir",
            healthy.path().to_str().expect("utf-8"),
        ];
        let out = cricket(&args, None);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{fault} healthy replay: {}",
            text(&out)
        );
        let doc = results(healthy.path());
        assert_eq!(
            doc["summary"]["counts"]["total"], 1,
            "a replay runs its one property"
        );
    }
}

#[test]
fn a_bad_replay_file_is_a_usage_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\"format\": \"something else\"}").expect("write");
    let out = cricket(&["run", "--replay", bad.to_str().expect("utf-8")], None);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.json"), "{err}");
}

/// containerd 1.6.20 has races the suite finds now and then (see the issue notes), so the
/// verdict may be either; what must hold is that both properties run to the end and report.
#[test]
fn runs_against_containerd() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = cricket(
        &[
            "run",
            "--target",
            "containerd",
            "--suite",
            "property",
            "--budget",
            "10s",
            "--report-dir",
            dir.path().to_str().expect("utf-8"),
        ],
        None,
    );
    assert!(matches!(out.status.code(), Some(0 | 1)), "{}", text(&out));
    let doc = results(dir.path());
    for id in [
        "property.lifecycle.sequential",
        "property.lifecycle.concurrent",
    ] {
        let c = case(&doc, id);
        let sequences: u64 = c["notes"]["sequences"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        assert!(sequences > 0, "{id} ran no sequence: {c}");
        if c["outcome"] == "fail" {
            let replay = c["notes"]["replay_file"].as_str().expect("replay file");
            assert!(Path::new(replay).is_file(), "{id}: {replay}");
        }
    }
    assert!(
        doc["summary"]["leaks"]
            .as_array()
            .is_some_and(Vec::is_empty),
        "{doc}"
    );
}
