//! `cricket bench` end to end against the bundled runtime: the table and bench.json are
//! written, a baseline saved from the run passes, and a baseline the runtime cannot meet fails
//! the run with exit 1. (No timing is asserted here: speed is judged by the baseline files.)

use std::process::Command;

fn bench(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_cricket"))
        .arg("bench")
        .args(args)
        .output()
        .expect("cricket bench");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn baselines_pass_when_met_and_fail_when_not() {
    let dir = tempfile::tempdir().expect("tmp");
    let json = dir.path().join("bench.json");
    let base = dir.path().join("baselines");
    let (code, out) = bench(&[
        "--pods",
        "3",
        "--warmup",
        "1",
        "--json",
        json.to_str().expect("utf-8"),
        "--save-baselines",
        base.to_str().expect("utf-8"),
        "--tolerance",
        "100000",
        "--concurrency",
        "1,2",
    ]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("pod startup (run+create+start)"), "{out}");
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).expect("bench.json")).expect("json");
    assert_eq!(doc["targets"][0]["pod_startup"]["n"], 3);
    let sweep = doc["targets"][0]["sweep"].as_array().expect("sweep");
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
            .all(|l| l["pods_per_sec"].as_f64().is_some_and(|p| p > 0.0)
                && l["pod_startup"]["n"] == 3)
    );
    let saved = base.join("bundled.json");
    let (code, out) = bench(&[
        "--pods",
        "3",
        "--warmup",
        "1",
        "--baseline",
        saved.to_str().expect("utf-8"),
    ]);
    assert_eq!(code, Some(0), "a generous baseline must pass:\n{out}");

    let mut b: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&saved).expect("baseline")).expect("json");
    for m in b["metrics"].as_object_mut().expect("metrics").values_mut() {
        m["p50_us"] = 1.into();
        m["max_regression_percent"] = 0.into();
    }
    let impossible = dir.path().join("impossible.json");
    std::fs::write(&impossible, serde_json::to_vec(&b).expect("json")).expect("write");
    let (code, out) = bench(&[
        "--pods",
        "3",
        "--warmup",
        "1",
        "--baseline",
        impossible.to_str().expect("utf-8"),
    ]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("REGRESSION bundled pod_startup"), "{out}");
}
