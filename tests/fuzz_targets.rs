//! A smoke run of every cargo-fuzz target under fuzz/ (its own cargo workspace, stable
//! toolchain, no sanitizer): each must build and survive a short run. The same oracles run over
//! generated inputs in the crates' unit tests; this proves the libFuzzer harnesses themselves.

use std::process::Command;

const TARGETS: &[&str] = &[
    "channel_messages",
    "cri_roundtrip",
    "layer_unpack",
    "registry_request",
    "runtime_request",
    "spdy_frames",
];

#[test]
fn every_cargo_fuzz_target_survives_a_smoke_run() {
    let fuzz_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz");
    let listed = Command::new("cargo")
        .args(["fuzz", "list"])
        .current_dir(fuzz_dir)
        .output()
        .expect("cargo runs");
    assert!(
        listed.status.success(),
        "cargo-fuzz is not installed: run `bash ci/setup.sh` first (the README's test command does)\n{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    let names = String::from_utf8_lossy(&listed.stdout);
    for t in TARGETS {
        assert!(
            names.lines().any(|l| l.trim() == *t),
            "{t} not in `cargo fuzz list`: {names}"
        );
        let out = Command::new("cargo")
            .args([
                "fuzz",
                "run",
                "-s",
                "none",
                t,
                "--",
                "-runs=20000",
                "-max_total_time=60",
            ])
            .current_dir(fuzz_dir)
            .output()
            .expect("cargo fuzz runs");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "{t}:\n{}",
            err.lines().rev().take(30).collect::<Vec<_>>().join("\n")
        );
        assert!(err.contains("Done"), "{t} did not finish its runs:\n{err}");
    }
}
