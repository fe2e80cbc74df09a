//! `cricket` end to end, as a user runs it: exit codes, one-line usage errors, and the reports
//! of real runs against the bundled runtime and a throwaway containerd.

use std::path::Path;
use std::process::{Command, Output};

fn cricket(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cricket"))
        .args(args)
        .output()
        .expect("cricket runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn read_junit(path: &Path) -> quick_junit::Report {
    let xml = std::fs::read_to_string(path).expect("junit.xml written");
    quick_junit::Report::deserialize_from_str(&xml).expect("junit.xml parses")
}

fn validate_results(path: &Path) -> serde_json::Value {
    let schema: serde_json::Value =
        serde_json::from_str(include_str!("../harness/schema/results.schema.json"))
            .expect("schema is JSON");
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("results.json written"))
            .expect("results.json is JSON");
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(&doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "results.json does not match its schema:\n{}",
        errors.join("\n")
    );
    doc
}

#[test]
fn usage_errors_exit_2_with_one_line() {
    for (args, needle) in [
        (&["run", "--target", "nosuch"][..], "nosuch"),
        (
            &["run", "--endpoint", "unix:///nonexistent"][..],
            "/nonexistent",
        ),
        (&["run", "-j", "0"][..], "'0'"),
        (&["run", "--tags", "bogus"][..], "bogus"),
        (&["run", "--suite", "nope"][..], "nope"),
        (&["run", "--focus", "no.such.case"][..], "no case matches"),
        (&["run", "--case-timeout", "soon"][..], "soon"),
        (&["run", "--target", "endpoint"][..], "--endpoint"),
        (
            &["run", "--expectations", "/nonexistent.toml"][..],
            "/nonexistent.toml",
        ),
        (
            &["run", "--images", "/nonexistent-map.toml"][..],
            "/nonexistent-map.toml",
        ),
    ] {
        let out = cricket(args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
        let err = text(&out.stderr);
        assert_eq!(
            err.trim_end().lines().count(),
            1,
            "{args:?} printed more than one line:\n{err}"
        );
        assert!(
            err.contains(needle),
            "{args:?}: {err:?} does not name {needle:?}"
        );
    }
}

#[test]
fn list_json_describes_every_case() {
    let out = cricket(&["list", "--format", "json"]);
    assert!(out.status.success());
    let cases: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).expect("JSON list");
    assert!(cases.len() >= 4);
    for c in &cases {
        for key in [
            "id",
            "suite",
            "summary",
            "tags",
            "needs",
            "req",
            "timeout_ms",
        ] {
            assert!(c.get(key).is_some(), "{c} lacks {key}");
        }
        assert!(
            c["req"].as_array().is_some_and(|r| !r.is_empty()),
            "{c} has no req"
        );
    }
    assert!(cases.iter().any(|c| c["id"] == "runtime.version.fields"));
}

#[test]
fn run_against_the_bundled_runtime_writes_reports() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Every suite of a default run, the property suite briefly and from a fixed seed.
    let out = cricket(&[
        "run",
        "--seed",
        "1",
        "--budget",
        "5s",
        "--report-dir",
        dir.path().to_str().expect("utf-8 path"),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{}\nstderr:\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let stdout = text(&out.stdout);
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("cricket: ") && l.contains(" passed, 0 failed")),
        "{stdout}"
    );

    let listed: Vec<serde_json::Value> = serde_json::from_slice(
        &cricket(&[
            "list",
            "--format",
            "json",
            "--suite",
            "conformance,property",
        ])
        .stdout,
    )
    .expect("list");
    let report = read_junit(&dir.path().join("junit.xml"));
    let cases: Vec<_> = report
        .test_suites
        .iter()
        .flat_map(|s| s.test_cases.iter())
        .collect();
    assert_eq!(cases.len(), listed.len(), "one testcase per case");
    for c in &cases {
        assert!(
            c.classname
                .as_ref()
                .is_some_and(|n| n.as_str().starts_with("bundled.")),
            "{:?}",
            c.classname
        );
        // Every case passes, except the bundled expectations' xfails, which JUnit shows as
        // skipped with the reason.
        let expected =
            cricket_harness::expectations::Expectations::builtin("bundled").expect("expectations");
        match &c.status {
            quick_junit::TestCaseStatus::Success { .. } => {
                assert!(
                    expected.xfail(c.name.as_str()).is_none(),
                    "{} passed but is xfail",
                    c.name.as_str()
                )
            }
            quick_junit::TestCaseStatus::Skipped { message, .. } => {
                let message = message
                    .as_ref()
                    .map(|m| m.as_str().to_string())
                    .unwrap_or_default();
                match expected.xfail(c.name.as_str()).map(|p| p.reason.as_str()) {
                    Some(reason) => assert_eq!(message, format!("expected failure: {reason}")),
                    // A real skip (an optional RPC the runtime does not implement) says why.
                    None => assert!(
                        !message.trim().is_empty() && !message.starts_with("expected failure"),
                        "{}: skip without a reason",
                        c.name.as_str()
                    ),
                }
            }
            other => panic!("{}: {other:?}", c.name.as_str()),
        }
    }

    let doc = validate_results(&dir.path().join("results.json"));
    assert_eq!(doc["run"]["target"]["runtime_name"], "cricket");
    assert_eq!(doc["summary"]["counts"]["failed"], 0);
    assert!(dir.path().join("bundled-runtime.log").exists());
}

/// `cricket run --focus network --bundled-network MODE`: its results.json, once the run
/// passed.
fn network_run(mode: &str) -> serde_json::Value {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = cricket(&[
        "run",
        "--focus",
        "network",
        "--bundled-network",
        mode,
        "--report-dir",
        dir.path().to_str().expect("utf-8 path"),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    let doc = validate_results(&dir.path().join("results.json"));
    let n = doc["cases"].as_array().map_or(0, Vec::len);
    assert!(n >= 10, "{n} network cases");
    doc
}

/// `--bundled-network none`: the runtime says NetworkReady=false with its reason, the cases
/// that need pod networking skip with that reason, and the rest still pass.
#[test]
fn network_cases_under_bundled_network_none() {
    let doc = network_run("none");
    for c in doc["cases"].as_array().expect("cases") {
        let id = c["id"].as_str().unwrap_or_default();
        let outcome = c["outcome"].as_str().unwrap_or_default();
        if id == "network.status.ready_agrees" || id == "network.host.host_network_pod" {
            assert_eq!(outcome, "pass", "{id}: {c}");
        } else {
            assert_eq!(outcome, "skip", "{id}: {c}");
            let reason = c["reason"].as_str().unwrap_or_default();
            assert!(
                reason.contains("NetworkReady=false") && reason.contains("--network none"),
                "{id}: {reason}"
            );
        }
    }
}

/// `--bundled-network cni`: the bundled runtime runs Debian's CNI plugins (bridge,
/// host-local, portmap, loopback) and every network case passes as on its own bridge.
#[test]
fn network_cases_under_bundled_network_cni() {
    let doc = network_run("cni");
    for c in doc["cases"].as_array().expect("cases") {
        assert_eq!(c["outcome"], "pass", "{c}");
    }
    assert_eq!(doc["run"]["target"]["pod_cidr"], "10.98.0.0/16");
}

#[test]
fn run_against_containerd_starts_and_removes_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let before = containerd_pids();
    // Conformance only: the property suite finds containerd 1.6.20's races now and then
    // (tests/property.rs runs it against containerd without judging the verdict).
    let out = cricket(&[
        "run",
        "--target",
        "containerd",
        "--suite",
        "conformance",
        "--report-dir",
        dir.path().to_str().expect("utf-8 path"),
    ]);
    let stderr = text(&out.stderr);
    assert!(
        !stderr.contains("containerd not found"),
        "containerd is not installed: run `bash ci/setup.sh` first (the README's test command does)"
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{}\nstderr:\n{stderr}",
        text(&out.stdout)
    );
    let report = read_junit(&dir.path().join("junit.xml"));
    assert!(report.tests > 0);
    let doc = validate_results(&dir.path().join("results.json"));
    assert_eq!(doc["run"]["target"]["runtime_name"], "containerd");
    // containerd pulled the fixtures (tag, index, basic auth) from the embedded registry, ran
    // pods on the fixture pause image and a probe container that echoed into its log.
    for id in [
        "image.pull.by_tag",
        "image.pull.index_platform",
        "image.pull.with_auth",
        "container.run.echo_to_log",
    ] {
        let case = doc["cases"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["id"] == id));
        assert_eq!(
            case.map(|c| c["outcome"].clone()),
            Some(serde_json::json!("pass")),
            "{id} against containerd"
        );
    }
    // The bundled runtime's default seccomp profile answers every call of the probe's matrix
    // as containerd's does, with the default capabilities and with all of them.
    let bundled_dir = tempfile::tempdir().expect("tempdir");
    let out = cricket(&[
        "run",
        "--suite",
        "conformance",
        "--focus",
        "security.seccomp.runtime_default",
        "--report-dir",
        bundled_dir.path().to_str().expect("utf-8 path"),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let bundled = validate_results(&bundled_dir.path().join("results.json"));
    let notes = |doc: &serde_json::Value| {
        doc["cases"]
            .as_array()
            .and_then(|c| {
                c.iter()
                    .find(|c| c["id"] == "security.seccomp.runtime_default")
            })
            .map(|c| c["notes"].clone())
            .unwrap_or_default()
    };
    let (theirs, ours) = (notes(&doc), notes(&bundled));
    for key in ["syscall_matrix", "syscall_matrix_all_caps"] {
        let (t, o) = (theirs[key].as_str(), ours[key].as_str());
        assert!(
            t.is_some_and(|t| t.lines().count() > 40),
            "containerd's {key}: {t:?}"
        );
        let differ: Vec<String> = t
            .unwrap_or_default()
            .lines()
            .zip(o.unwrap_or_default().lines())
            .filter(|(a, b)| a != b)
            .map(|(a, b)| format!("containerd `{a}`, bundled `{b}`"))
            .collect();
        assert!(
            differ.is_empty() && t.map(str::len) == o.map(str::len),
            "{key}: the default seccomp profiles answer differently: {differ:?}"
        );
    }
    // Nothing of the throwaway containerd outlives the run.
    assert_eq!(
        containerd_pids(),
        before,
        "containerd processes left behind"
    );
    let leftovers: Vec<_> = std::fs::read_dir(std::env::temp_dir())
        .expect("tmp")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("cricket-containerd-"))
                && std::fs::read_to_string(dir.path().join("results.json"))
                    .is_ok_and(|r| r.contains(&*p.to_string_lossy()))
        })
        .collect();
    assert!(
        leftovers.is_empty(),
        "temporary directories left behind: {leftovers:?}"
    );
}

/// containerd processes whose command line names a cricket temporary directory.
fn containerd_pids() -> Vec<u32> {
    let mut pids: Vec<u32> = std::fs::read_dir("/proc")
        .expect("/proc")
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
        .filter(|pid: &u32| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| {
                    let c = String::from_utf8_lossy(&c);
                    c.contains("containerd") && c.contains("cricket-containerd-")
                })
                .unwrap_or(false)
        })
        .collect();
    pids.sort();
    pids
}
