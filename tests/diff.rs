//! `cricket diff` on two real runs: the same cases against a correct runtime and against one
//! broken on purpose. The newly failing case comes first and the exit status is 1; the other
//! way round it is reported as fixed and the status is 0.

use std::path::Path;
use std::process::Command;

fn run(dir: &Path, fault: Option<&str>) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cricket"));
    cmd.args([
        "run",
        "--focus",
        "runtime.version",
        "--focus",
        "runtime.status",
        "--report-dir",
    ])
    .arg(dir);
    match fault {
        Some(f) => cmd.env("CRICKET_RUNTIME_FAULTS", f),
        None => cmd.env_remove("CRICKET_RUNTIME_FAULTS"),
    };
    cmd.output().expect("cricket run");
}

fn diff(a: &Path, b: &Path) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_cricket"))
        .arg("diff")
        .arg(a)
        .arg(b)
        .output()
        .expect("cricket diff");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn newly_failing_cases_come_first_and_fail_the_diff() {
    let (good, bad) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    run(good.path(), None);
    run(bad.path(), Some("version-bad-semver"));
    let (g, b) = (
        good.path().join("results.json"),
        bad.path().join("results.json"),
    );

    let (code, out) = diff(&g, &b);
    assert_eq!(code, Some(1), "{out}");
    let first = out.lines().next().unwrap_or_default();
    assert!(first.starts_with("NEWLY FAILING (1)"), "{out}");
    assert!(
        out.lines()
            .nth(1)
            .is_some_and(|l| l.contains("runtime.version.fields") && l.contains("pass -> fail")),
        "{out}"
    );

    let (code, out) = diff(&b, &g);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.starts_with("fixed (1)"), "{out}");

    let (code, out) = diff(&g, &g);
    assert_eq!((code, out.trim()), (Some(0), "no differences in outcomes"));

    let (code, _) = diff(&g, Path::new("/nonexistent/results.json"));
    assert_eq!(code, Some(2));
}
