//! `cricket bench` end to end against the bundled runtime: every workload reports, bench.json,
//! critest files and the HTML page are written, a baseline saved from a run passes, and a
//! runtime slowed down on purpose (fault `start-slow`) fails its baseline and `cricket diff`.
//! No timing is asserted by the test itself: speed is judged by the baseline files.

use std::path::Path;
use std::process::Command;

fn cricket(args: &[&str], fault: Option<&str>) -> (Option<i32>, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cricket"));
    cmd.args(args);
    match fault {
        Some(f) => cmd.env("CRICKET_RUNTIME_FAULTS", f),
        None => cmd.env_remove("CRICKET_RUNTIME_FAULTS"),
    };
    let out = cmd.output().expect("cricket");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn read_json(p: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .expect("json")
}

#[test]
fn every_workload_reports_and_baselines_pass_when_met() {
    let dir = tempfile::tempdir().expect("tmp");
    let report = dir.path().join("run");
    let base = dir.path().join("baselines");
    let (code, out) = cricket(
        &[
            "bench",
            "--samples",
            "3",
            "--warmup",
            "1",
            "--pulls",
            "1",
            "--list-sizes",
            "4,8",
            "--concurrency",
            "1,2",
            "--report-dir",
            s(&report),
            "--save-baselines",
            s(&base),
            "--tolerance",
            "100000",
            "--tolerance-below",
            "100",
        ],
        None,
    );
    assert_eq!(code, Some(0), "{out}");
    for title in [
        "pod startup, 1 container",
        "pod startup, 3 containers",
        "ExecSync round trip",
        "ListContainers, 8 containers present",
        "PullImage, cold",
        "concurrency sweep",
    ] {
        assert!(out.contains(title), "{title:?} missing:\n{out}");
    }
    let doc = read_json(&report.join("bench.json"));
    assert_eq!(doc["schema"], "cricket.bench/v2");
    let t = &doc["targets"][0];
    assert_eq!(t["env"]["target"], "bundled");
    assert!(t["env"]["kernel"].as_str().is_some_and(|k| !k.is_empty()));
    let metrics = t["metrics"].as_array().expect("metrics");
    let names: Vec<&str> = metrics.iter().filter_map(|m| m["name"].as_str()).collect();
    for name in [
        "pod_startup_1c",
        "pod_startup_3c",
        "teardown_1c",
        "teardown_3c",
        "RunPodSandbox",
        "StopContainer",
        "ExecSync",
        "ListPodSandbox_4",
        "ListContainers_8",
        "PullImage_cold",
        "PullImage_warm",
        "ImageStatus",
    ] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
    for m in metrics {
        let want = if m["name"] == "PullImage_cold" || m["name"] == "RemoveImage" {
            1
        } else {
            3
        };
        assert_eq!(m["summary"]["n"], want, "{m}");
        assert_eq!(
            m["summary"]["samples_us"].as_array().map(Vec::len),
            Some(want),
            "{m}"
        );
        assert!(m["summary"]["stddev_us"].is_number(), "{m}");
    }
    let sweep = t["sweep"].as_array().expect("sweep");
    assert_eq!(
        sweep
            .iter()
            .map(|l| l["concurrency"].as_u64())
            .collect::<Vec<_>>(),
        [Some(1), Some(2)]
    );
    assert!(
        sweep
            .iter()
            .all(|l| l["pods_per_sec"].as_f64().is_some_and(|p| p > 0.0))
    );
    let critest = report.join("critest/bundled");
    let pods = read_json(&critest.join("pod_benchmark_data.json"));
    assert_eq!(
        pods["operationsNames"],
        serde_json::json!([
            "RunPodSandbox",
            "PodSandboxStatus",
            "StopPodSandbox",
            "RemovePodSandbox"
        ])
    );
    assert_eq!(pods["datapoints"].as_array().map(Vec::len), Some(3));
    for f in [
        "container_benchmark_data.json",
        "image_lifecycle_benchmark_data.json",
        "image_listing_benchmark_data.json",
    ] {
        assert!(
            read_json(&critest.join(f))["datapoints"]
                .as_array()
                .is_some_and(|d| !d.is_empty()),
            "{f}"
        );
    }
    let html = std::fs::read_to_string(report.join("index.html")).expect("index.html");
    assert!(html.contains("<svg") && html.contains("pod startup, 1 container"));

    let (code, out) = cricket(
        &[
            "bench",
            "--samples",
            "3",
            "--warmup",
            "1",
            "--workloads",
            "pods",
            "--report-dir",
            s(&dir.path().join("again")),
            "--baseline",
            s(&base.join("bundled.json")),
        ],
        None,
    );
    assert_eq!(code, Some(0), "a generous baseline must pass:\n{out}");
    assert!(out.contains("not measured this run, not judged"), "{out}");
}

/// The regression oracle bites on a real slow-down: a baseline saved from a healthy run, then
/// the same workload with StartContainer 100 ms slower.
#[test]
fn a_slowed_runtime_fails_its_baseline_and_the_diff() {
    let dir = tempfile::tempdir().expect("tmp");
    let (healthy, slow, base) = (
        dir.path().join("healthy"),
        dir.path().join("slow"),
        dir.path().join("b"),
    );
    let args = |report: &Path| -> Vec<String> {
        [
            "bench",
            "--samples",
            "5",
            "--warmup",
            "1",
            "--workloads",
            "pods",
            "--report-dir",
            s(report),
        ]
        .map(String::from)
        .to_vec()
    };
    let mut a = args(&healthy);
    a.extend(
        [
            "--save-baselines",
            s(&base),
            "--tolerance",
            "50",
            "--tolerance-below",
            "100",
        ]
        .map(String::from),
    );
    let (code, out) = cricket(&a.iter().map(String::as_str).collect::<Vec<_>>(), None);
    assert_eq!(code, Some(0), "{out}");

    let mut a = args(&slow);
    a.extend([
        "--baseline".to_string(),
        s(&base.join("bundled.json")).to_string(),
    ]);
    let (code, out) = cricket(
        &a.iter().map(String::as_str).collect::<Vec<_>>(),
        Some("start-slow"),
    );
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("REGRESSION bundled StartContainer: p50"),
        "{out}"
    );
    assert!(
        out.contains("REGRESSION bundled pod_startup_1c: p50"),
        "{out}"
    );

    let (code, out) = cricket(
        &[
            "diff",
            s(&healthy.join("bench.json")),
            s(&slow.join("bench.json")),
        ],
        None,
    );
    assert_eq!(code, Some(1), "{out}");
    let first = out.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("SLOWER by more than 50%") && first.contains("StartContainer"),
        "{out}"
    );
}

#[test]
fn bad_arguments_are_named() {
    for (args, needle) in [
        (
            &["bench", "--workloads", "pods,nope"][..],
            "unknown workload \"nope\"",
        ),
        (
            &["bench", "--target", "endpoint"][..],
            "no CRI endpoint found; tried --endpoint (not given), CONTAINER_RUNTIME_ENDPOINT",
        ),
        (
            &["bench", "--target", "bundled", "--target", "bundled"][..],
            "--target bundled is given twice",
        ),
        (
            &["bench", "--baseline", "/nonexistent.json"][..],
            "cannot read baseline /nonexistent.json",
        ),
        (&["bench", "--tolerance-below", "101"][..], "101"),
        (
            &["bench", "--baseline", "reports/baselines/containerd.json"][..],
            "not measured (add --target containerd)",
        ),
        (
            &["bench", "--concurrency", "2,1,2"][..],
            "--concurrency lists a level twice",
        ),
    ] {
        let (code, out) = cricket(args, None);
        assert_eq!(code, Some(2), "{args:?}: {out}");
        assert!(out.contains(needle), "{args:?}: {out}");
    }
}

/// A target that cannot start is named (exit 2) and the others keep their figures.
#[test]
fn an_unstartable_target_does_not_cost_the_others_their_figures() {
    let dir = tempfile::tempdir().expect("tmp");
    let (code, out) = cricket(
        &[
            "bench",
            "--target",
            "bundled",
            "--target",
            "containerd",
            "--containerd-bin",
            "/nonexistent/containerd",
            "--workloads",
            "exec",
            "--samples",
            "2",
            "--warmup",
            "0",
            "--report-dir",
            s(dir.path()),
        ],
        None,
    );
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("/nonexistent/containerd"), "{out}");
    let doc = read_json(&dir.path().join("bench.json"));
    assert_eq!(doc["targets"].as_array().map(Vec::len), Some(1), "{doc}");
    assert_eq!(doc["targets"][0]["metrics"][0]["name"], "ExecSync");
}
