//! Why a case did not pass, as data: a kind (what sort of failure), a stable check id (which
//! assertion), and enough context to act on it. Expectations pin the check id, so a case
//! expected to fail at one check that starts failing at another is news, not noise. One
//! function renders a failure for every human-facing report.

use std::fmt;

use serde::Serialize;

/// What sort of failure a case ended in. `Harness` is cricket's own fault (a missing fixture,
/// an unwritable scratch directory): JUnit writes it as `<error>`, never as the runtime
/// failing a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// A condition the rule requires did not hold (`ensure!`).
    Assertion,
    /// A value differed from the one the rule requires (`ensure_eq!`), both shown.
    Mismatch,
    /// An RPC answered a gRPC status the case did not allow.
    Status,
    /// The case ran past its timeout.
    Timeout,
    /// The case body panicked.
    Panic,
    /// Removing what the case created failed.
    Cleanup,
    /// The target process exited during the case.
    TargetExited,
    /// Expected to fail on this target, but passed.
    Xpass,
    /// The run was stopped (Ctrl-C, or the target died) before the case finished.
    Interrupted,
    /// cricket could not set the case up; says nothing about the target.
    Harness,
}

impl FailureKind {
    pub fn name(self) -> &'static str {
        match self {
            FailureKind::Assertion => "assertion",
            FailureKind::Mismatch => "mismatch",
            FailureKind::Status => "status",
            FailureKind::Timeout => "timeout",
            FailureKind::Panic => "panic",
            FailureKind::Cleanup => "cleanup",
            FailureKind::TargetExited => "target_exited",
            FailureKind::Xpass => "xpass",
            FailureKind::Interrupted => "interrupted",
            FailureKind::Harness => "harness",
        }
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Check ids the harness gives failures it detects itself (cases name their own).
pub mod checks {
    pub const TIMEOUT: &str = "case.timeout";
    pub const PANIC: &str = "case.panic";
    pub const CLEANUP: &str = "case.cleanup";
    pub const TARGET_EXITED: &str = "target.exited";
    pub const TARGET_DOWN: &str = "target.down";
    pub const XPASS: &str = "expectation.xpass";
    pub const INTERRUPTED: &str = "run.interrupted";
    /// An RPC failed with a status no check anticipated and the client did not say which.
    pub const RPC_UNKNOWN: &str = "rpc.ok";
    /// Every check id the harness itself produces, apart from `rpc.<method>.ok`.
    pub const ALL: &[&str] = &[
        TIMEOUT,
        TARGET_EXITED,
        TARGET_DOWN,
        PANIC,
        CLEANUP,
        XPASS,
        INTERRUPTED,
        RPC_UNKNOWN,
    ];
}

/// Whether `s` is a check id: two or more dot-separated parts of lower snake case
/// (`pod.status.labels_equal`). `const`, so the assertion macros refuse a bad literal at
/// compile time.
pub const fn is_check_id(s: &str) -> bool {
    let b = s.as_bytes();
    if b.is_empty() || b[0] == b'.' || b[b.len() - 1] == b'.' {
        return false;
    }
    let mut dots = 0;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'.' {
            if b[i - 1] == b'.' {
                return false;
            }
            dots += 1;
        } else if !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_') {
            return false;
        }
        i += 1;
    }
    dots >= 1
}

/// The check id of an RPC that answered an error no check anticipated:
/// `RunPodSandbox` → `rpc.run_pod_sandbox.ok`.
pub fn rpc_check(method: &str) -> String {
    let mut s = String::from("rpc.");
    for (i, ch) in method.chars().enumerate() {
        if ch.is_ascii_uppercase() {
            if i > 0 {
                s.push('_');
            }
            s.push(ch.to_ascii_lowercase());
        } else {
            s.push(ch);
        }
    }
    s.push_str(".ok");
    s
}

/// What went wrong, with enough to act on it: which check, where, what was sent, what was
/// expected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    pub kind: FailureKind,
    /// Stable id of the assertion that failed; expectations pin it.
    pub check: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actual: Option<String>,
    /// The last request the case sent before failing (method and message).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request: Option<String>,
}

impl Failure {
    pub fn new(kind: FailureKind, check: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            kind,
            check: check.into(),
            message: message.into(),
            step: None,
            expected: None,
            actual: None,
            request: None,
        }
    }
}

/// Why a case did not pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaseError {
    /// Boxed: a failure carries text enough to be large, and every case result is a
    /// `Result<_, CaseError>` passed up through `?`.
    Fail(Box<Failure>),
    /// The case cannot run here; the reason is mandatory and shown in every report.
    Skip { reason: String },
}

impl CaseError {
    /// A condition the rule requires did not hold.
    pub fn fail(check: &'static str, message: impl Into<String>) -> Self {
        Failure::new(FailureKind::Assertion, check, message).into()
    }

    /// A value is not the one the rule requires.
    pub fn mismatch(
        check: &'static str,
        message: impl Into<String>,
        expected: impl Into<String>,
        actual: impl Into<String>,
    ) -> Self {
        let mut f = Failure::new(FailureKind::Mismatch, check, message);
        f.expected = Some(expected.into());
        f.actual = Some(actual.into());
        f.into()
    }

    /// An RPC answered a status the rule does not allow.
    pub fn status(check: &'static str, message: impl Into<String>) -> Self {
        Failure::new(FailureKind::Status, check, message).into()
    }

    /// cricket itself could not do its part (no such fixture, no scratch directory).
    pub fn harness(check: &'static str, message: impl Into<String>) -> Self {
        Failure::new(FailureKind::Harness, check, message).into()
    }

    pub fn skip(reason: impl Into<String>) -> Self {
        CaseError::Skip {
            reason: reason.into(),
        }
    }

    /// The check id of a failure (none for a skip).
    pub fn check(&self) -> Option<&str> {
        match self {
            CaseError::Fail(f) => Some(&f.check),
            CaseError::Skip { .. } => None,
        }
    }
}

impl fmt::Display for CaseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CaseError::Skip { reason } => write!(f, "skipped: {reason}"),
            CaseError::Fail(fl) => f.write_str(render(fl, None).trim_end()),
        }
    }
}

impl From<Failure> for CaseError {
    fn from(f: Failure) -> Self {
        CaseError::Fail(Box::new(f))
    }
}

/// Metadata key under which the timed client names the RPC of an error status, so a `?` on
/// it becomes a failure with the check id `rpc.<method>.ok`.
pub const METHOD_METADATA: &str = "x-cricket-method";

impl From<tonic::Status> for CaseError {
    fn from(s: tonic::Status) -> Self {
        let method = s
            .metadata()
            .get(METHOD_METADATA)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let (check, what) = match &method {
            Some(m) => (rpc_check(m), format!("{m}: ")),
            None => (checks::RPC_UNKNOWN.to_string(), String::new()),
        };
        CaseError::from(Failure::new(
            FailureKind::Status,
            check,
            format!(
                "{what}unexpected gRPC status {:?}: {}",
                s.code(),
                s.message()
            ),
        ))
    }
}

/// The failure block every human-facing report shows (terminal, JUnit description, the
/// `cargo test` harness): one labelled line per field, continuation lines indented to the
/// value column. `reason` is the expectation's reason or a skip's, when there is one.
pub fn render(f: &Failure, reason: Option<&str>) -> String {
    const COL: &str = "          ";
    let mut s = String::new();
    let mut field = |label: &str, value: &str| {
        for (i, line) in value.lines().enumerate() {
            if i == 0 {
                s.push_str(&format!("{label:<10}{line}\n"));
            } else {
                s.push_str(&format!("{COL}{line}\n"));
            }
        }
        if value.is_empty() {
            s.push_str(&format!("{label}\n"));
        }
    };
    field("check:", &format!("{} ({})", f.check, f.kind));
    if let Some(step) = &f.step {
        field("step:", step);
    }
    field("error:", &f.message);
    if let Some(e) = &f.expected {
        field("expected:", e);
    }
    if let Some(a) = &f.actual {
        field("actual:", a);
    }
    if let Some(r) = &f.request {
        field("request:", r);
    }
    if let Some(r) = reason {
        field("reason:", r);
    }
    s
}

/// Fails the case with the check id unless `expected == actual`, showing both. The id is a
/// literal (checked at compile time) or a `&'static str` parameter of a helper that asserts
/// on its callers' behalf.
#[macro_export]
macro_rules! ensure_eq {
    ($check:literal, $expected:expr, $actual:expr, $($what:tt)+) => {{
        const _: () = assert!($crate::failure::is_check_id($check), "not a check id (lower_snake.dotted)");
        $crate::ensure_eq!(@ $check, $expected, $actual, $($what)+)
    }};
    ($check:ident, $expected:expr, $actual:expr, $($what:tt)+) => {{
        debug_assert!($crate::failure::is_check_id($check), "not a check id: {}", $check);
        $crate::ensure_eq!(@ $check, $expected, $actual, $($what)+)
    }};
    (@ $check:expr, $expected:expr, $actual:expr, $($what:tt)+) => {{
        let (e, a) = (&$expected, &$actual);
        if e != a {
            return Err($crate::CaseError::mismatch($check, format!($($what)+), format!("{e:?}"), format!("{a:?}")));
        }
    }};
}

/// Fails the case with the check id and a message unless the condition holds (the id as for
/// [`ensure_eq!`]).
#[macro_export]
macro_rules! ensure {
    ($check:literal, $cond:expr, $($what:tt)+) => {{
        const _: () = assert!($crate::failure::is_check_id($check), "not a check id (lower_snake.dotted)");
        $crate::ensure!(@ $check, $cond, $($what)+)
    }};
    ($check:ident, $cond:expr, $($what:tt)+) => {{
        debug_assert!($crate::failure::is_check_id($check), "not a check id: {}", $check);
        $crate::ensure!(@ $check, $cond, $($what)+)
    }};
    (@ $check:expr, $cond:expr, $($what:tt)+) => {{
        if !$cond {
            return Err($crate::CaseError::fail($check, format!($($what)+)));
        }
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_ids() {
        for ok in [
            "a.b",
            "pod.status.labels_equal",
            "rpc.run_pod_sandbox.ok",
            "x1.y_2",
        ] {
            assert!(is_check_id(ok), "{ok}");
        }
        for bad in [
            "", "a", ".a.b", "a.b.", "a..b", "A.b", "a-b.c", "a.b c", "a.é",
        ] {
            assert!(!is_check_id(bad), "{bad}");
        }
        for c in checks::ALL {
            assert!(is_check_id(c), "{c}");
        }
        assert_eq!(rpc_check("RunPodSandbox"), "rpc.run_pod_sandbox.ok");
        assert_eq!(rpc_check("Version"), "rpc.version.ok");
        assert!(is_check_id(&rpc_check("UpdatePodSandboxResources")));
    }

    #[test]
    fn status_conversion_names_the_rpc() {
        let mut s = tonic::Status::unimplemented("no");
        s.metadata_mut().insert(
            METHOD_METADATA,
            tonic::metadata::MetadataValue::from_static("GetContainerEvents"),
        );
        let CaseError::Fail(f) = CaseError::from(s) else {
            panic!("a status is a failure");
        };
        assert_eq!(f.kind, FailureKind::Status);
        assert_eq!(f.check, "rpc.get_container_events.ok");
        assert_eq!(
            f.message,
            "GetContainerEvents: unexpected gRPC status Unimplemented: no"
        );
        let CaseError::Fail(f) = CaseError::from(tonic::Status::internal("x")) else {
            panic!("a status is a failure");
        };
        assert_eq!(f.check, checks::RPC_UNKNOWN);
    }

    fn full() -> Failure {
        Failure {
            kind: FailureKind::Mismatch,
            check: "pod.status.labels_equal".into(),
            message: "labels differ\nsecond line of the message".into(),
            step: Some("read status".into()),
            expected: Some("{\"a\": \"1\"}".into()),
            actual: Some("{}".into()),
            request: Some("PodSandboxStatus PodSandboxStatusRequest { pod_sandbox_id: \"p\", verbose: false }".into()),
        }
    }

    #[test]
    fn render_full_failure() {
        insta::assert_snapshot!(render(&full(), Some("containerd drops labels")));
    }

    #[test]
    fn render_minimal_failure() {
        insta::assert_snapshot!(render(
            &Failure::new(
                FailureKind::Harness,
                "harness.fixture",
                "no fixture image named \"nope\""
            ),
            None
        ));
    }

    #[test]
    fn display_is_the_rendered_block() {
        let e = CaseError::from(full());
        insta::assert_snapshot!(e.to_string());
    }
}
