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
    ("status-image-id-empty", "container.status.image_ref"),
    ("status-image-ref-tag", "container.status.image_ref"),
    ("status-user-request-only", "container.status.user"),
    (
        "passwd-via-host",
        "container.image_files.passwd_symlink_in_rootfs",
    ),
    ("caps-not-dropped", "security.caps.default_set"),
    ("exec-not-confined", "security.caps.default_set"),
    ("no-new-privs-ignored", "security.no_new_privs.flag"),
    ("masked-paths-ignored", "security.masked_paths.defaults"),
    ("host-pid-ignored", "security.namespaces.pid_host"),
    ("host-ipc-ignored", "security.namespaces.ipc_host"),
    ("pod-ipc-is-host", "security.namespaces.ipc_pod"),
    ("host-network-ignored", "security.namespaces.network_host"),
    ("host-network-ignored", "network.host.host_network_pod"),
    ("pod-network-is-host", "security.namespaces.network_pod"),
    ("seccomp-not-loaded", "security.seccomp.runtime_default"),
    ("seccomp-not-loaded", "security.seccomp.localhost"),
    (
        "seccomp-default-ignores-caps",
        "security.seccomp.runtime_default",
    ),
    (
        "seccomp-errors-unconfined",
        "security.seccomp.missing_file_refused",
    ),
    (
        "seccomp-errors-unconfined",
        "security.seccomp.bad_json_refused",
    ),
    (
        "seccomp-errors-unconfined",
        "security.seccomp.relative_ref_refused",
    ),
    (
        "seccomp-errors-unconfined",
        "security.seccomp.bad_path_refused",
    ),
    (
        "seccomp-unknown-names-skipped",
        "security.seccomp.unknown_syscall_refused",
    ),
    ("pid-target-unchecked", "security.namespaces.pid_target"),
    (
        "pid-target-unchecked",
        "security.namespaces.pid_target_shared_refused",
    ),
    (
        "mount-propagation-ignored",
        "container.mount.propagation_host_to_container",
    ),
    (
        "mount-propagation-ignored",
        "container.mount.propagation_bidirectional",
    ),
    (
        "mount-private-is-slave",
        "container.mount.propagation_private",
    ),
    (
        "bidirectional-one-way",
        "container.mount.propagation_bidirectional",
    ),
    (
        "mount-propagation-unchecked",
        "container.mount.propagation_needs_shared_host",
    ),
    (
        "recursive-readonly-top-only",
        "container.mount.recursive_readonly",
    ),
    (
        "mount-missing-created",
        "container.mount.missing_host_path_refused",
    ),
    ("oom-not-reported", "container.status.oom_killed"),
    (
        "strict-groups-merged",
        "container.status.user_strict_groups",
    ),
    (
        "apparmor-localhost-accepted",
        "security.apparmor.localhost_refused",
    ),
    ("apparmor-default-refused", "security.apparmor.default_runs"),
    (
        "selinux-options-refused",
        "security.selinux.options_without_selinux",
    ),
    ("userns-mode-unchecked", "security.namespaces.userns_modes"),
    ("pod-ip-missing", "network.pod.ip_in_range"),
    ("pod-eth-down", "network.pod.reachable_from_host"),
    ("pod-eth-down", "network.pod.pods_reach_each_other"),
    ("host-ports-ignored", "network.port_mapping.tcp"),
    ("host-ports-ignored", "network.port_mapping.udp"),
    ("host-ip-ignored", "network.port_mapping.host_ip"),
    (
        "host-port-zero-maps-container-port",
        "network.port_mapping.host_port_zero",
    ),
    ("host-ports-kept", "network.teardown.stop_reclaims"),
    (
        "network-ready-without-network",
        "network.status.ready_agrees",
    ),
    ("group-without-user-accepted", "security.identity.refusals"),
    ("user-and-username-accepted", "security.identity.refusals"),
    ("stop-signal-once", "security.namespaces.pid1_stop_signal"),
    ("no-authority-fix", "transport.authority.socket_path"),
    (
        "no-authority-fix",
        "transport.authority.percent_encoded_path",
    ),
    ("no-authority-fix", "transport.authority.empty"),
    ("deadline-cancelled", "transport.deadline.exec_sync"),
    ("deadline-cancelled", "transport.deadline.pull_image"),
    ("oversize-out-of-range", "transport.limits.receive_limit"),
    ("gzip-internal", "transport.encoding.gzip_request"),
    (
        "connection-fds-leak",
        "transport.connections.closed_mid_request",
    ),
    ("serial-accept", "transport.connections.idle_held"),
    ("bad-preface-hangs", "transport.preface.garbage"),
    ("stream-token-reusable", "streaming.token.reuse_refused"),
    ("stream-token-prefix", "fuzz.streaming.port"),
    ("exec-stream-drops-stderr", "streaming.exec.stdout_stderr"),
    ("exec-loses-exit-code", "streaming.exec.exit_codes"),
    ("exec-resize-ignored", "streaming.exec.tty_resize"),
    (
        "exec-disconnect-leaks",
        "streaming.exec.disconnect_ends_stdin",
    ),
    ("exec-disconnect-leaks", "streaming.exec.disconnect_kills"),
    ("attach-stdin-once-ignored", "streaming.attach.stdin_once"),
    (
        "attach-ignores-config",
        "streaming.attach.config_mismatch_refused",
    ),
    (
        "attach-session-closes-stdin",
        "streaming.attach.stdin_across_sessions",
    ),
    ("attach-merges-stderr", "streaming.attach.stdout_stderr"),
    (
        "port-forward-silent-error",
        "streaming.port_forward.closed_port",
    ),
    (
        "port-forward-truncates",
        "streaming.port_forward.two_connections",
    ),
    ("ws-base64-as-binary", "streaming.websocket.exec_base64"),
    (
        "ws-ignores-stream-close",
        "streaming.websocket.exec_v5_stdin_close",
    ),
    ("ws-no-port-prefix", "streaming.websocket.port_forward"),
];

/// A fault no case is paired with proves nothing; `start-slow` is proven by tests/bench.rs.
#[test]
fn every_fault_switch_has_its_case() {
    for (_, name, what) in cricket_runtime::fault::Fault::ALL {
        assert!(
            *name == "start-slow" || FAULTS.iter().any(|(f, _)| f == name),
            "fault {name} ({what}) is not paired with a case in FAULTS"
        );
    }
}

#[test]
fn each_fault_is_caught_by_its_case() {
    for (fault, case) in FAULTS {
        let dir = tempfile::tempdir().expect("tempdir");
        let suite = if case.starts_with("fuzz.") {
            "fuzz"
        } else {
            "conformance,property"
        };
        let out = Command::new(env!("CARGO_BIN_EXE_cricket"))
            .args([
                "run",
                "--suite",
                suite,
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

/// Runs one case on a bundled runtime with `faults` against the expectations in `exp`;
/// returns the exit code and the case's results.json entry.
fn run_pinned(case: &str, faults: &str, exp: &str) -> (Option<i32>, serde_json::Value) {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("expectations.toml");
    std::fs::write(&file, exp).expect("write expectations");
    let out = Command::new(env!("CARGO_BIN_EXE_cricket"))
        .args(["run", "--focus", case, "--expectations"])
        .arg(&file)
        .arg("--report-dir")
        .arg(dir.path().join("r"))
        .env("CRICKET_RUNTIME_FAULTS", faults)
        .output()
        .expect("cricket runs");
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("r/results.json")).expect("results"))
            .expect("json");
    let rec = doc["cases"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["id"] == case).cloned())
        .expect("the case ran");
    (out.status.code(), rec)
}

/// An expectation pins the check a case fails at (containerd 1.6.20 leaves image_id empty).
/// A runtime with that fault alone is an expected failure; the same runtime also reporting
/// the tag as image_ref fails differently, and the run says so instead of staying green.
#[test]
fn a_second_fault_in_an_xfail_case_is_not_hidden() {
    let exp = "[xfail]\n\"container.status.image_ref\" = { check = \"container.status.image_id_equal\", reason = \"image_id left empty, as containerd 1.6.20 does\" }\n";
    let (code, rec) = run_pinned("container.status.image_ref", "status-image-id-empty", exp);
    assert_eq!(
        (code, rec["outcome"].as_str()),
        (Some(0), Some("xfail")),
        "{rec}"
    );
    assert_eq!(rec["failure"]["check"], "container.status.image_id_equal");
    let (code, rec) = run_pinned(
        "container.status.image_ref",
        "status-image-id-empty,status-image-ref-tag",
        exp,
    );
    assert_eq!(
        (code, rec["outcome"].as_str()),
        (Some(1), Some("fail")),
        "{rec}"
    );
    assert_eq!(
        rec["failure"]["check"],
        "container.status.image_ref_digested"
    );
    assert_eq!(rec["failure"]["kind"], "assertion");
    let message = rec["failure"]["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("failed differently than expected: expected `container.status.image_id_equal`, got `container.status.image_ref_digested`"),
        "{message}"
    );
}

/// `--bless-expectations` writes what a run saw: the failing case pinned to its check. The
/// blessed file then holds the next run of the same runtime green.
#[test]
fn blessing_pins_what_failed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("mine.toml");
    let bless = |report: &str| {
        Command::new(env!("CARGO_BIN_EXE_cricket"))
            .args([
                "run",
                "--focus",
                "container.status.image_ref",
                "--bless-expectations",
            ])
            .arg(&file)
            .arg("--report-dir")
            .arg(dir.path().join(report))
            .env("CRICKET_RUNTIME_FAULTS", "status-image-ref-tag")
            .output()
            .expect("cricket runs")
    };
    let out = bless("r1");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&file).expect("blessed file written");
    let exp = cricket_harness::expectations::Expectations::parse(&text, "blessed").expect("parses");
    let pin = exp.xfail("container.status.image_ref").expect("pinned");
    assert_eq!(pin.check, "container.status.image_ref_digested");
    let (code, rec) = run_pinned("container.status.image_ref", "status-image-ref-tag", &text);
    assert_eq!((code, rec["outcome"].as_str()), (Some(0), Some("xfail")));
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
