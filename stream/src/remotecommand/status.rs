//! The result of a remote command as written on the error stream (channel 3 over
//! WebSocket): a JSON status from v4 on, plain text before.
//!
//! Builders produce both shapes seen in the wild, so a server can match either reference
//! and a client can be tested against both; the parser follows client-go's decoder,
//! including its error texts and its 0–255 exit code range.

use serde::Serialize;
use serde_json::{Map, Value};

pub const STATUS_SUCCESS: &str = "Success";
pub const STATUS_FAILURE: &str = "Failure";
pub const REASON_NON_ZERO_EXIT_CODE: &str = "NonZeroExitCode";
pub const REASON_INTERNAL_ERROR: &str = "InternalError";
pub const CAUSE_EXIT_CODE: &str = "ExitCode";

/// Which server's JSON to reproduce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusShape {
    /// k8s.io/streaming (2026): only the fields that are set.
    CriStreaming,
    /// `metav1.Status` (containerd 1.6, kubelet ≤ 1.35): always `"metadata":{}`, and internal
    /// errors repeat the message as a cause.
    Metav1,
}

#[derive(Serialize)]
struct StatusJson<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<Map<String, Value>>,
    status: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    message: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    reason: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<Details<'a>>,
    #[serde(skip_serializing_if = "is_zero")]
    code: i32,
}

#[derive(Serialize)]
struct Details<'a> {
    causes: Vec<Cause<'a>>,
}

#[derive(Serialize)]
struct Cause<'a> {
    #[serde(skip_serializing_if = "str::is_empty")]
    reason: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    message: &'a str,
}

fn is_zero(c: &i32) -> bool {
    *c == 0
}

fn render(s: StatusJson<'_>) -> Vec<u8> {
    // Plain structs of strings and integers always serialize.
    serde_json::to_vec(&s).unwrap_or_default()
}

fn metadata(shape: StatusShape) -> Option<Map<String, Value>> {
    (shape == StatusShape::Metav1).then(Map::new)
}

pub fn success_status(shape: StatusShape) -> Vec<u8> {
    render(StatusJson {
        metadata: metadata(shape),
        status: STATUS_SUCCESS,
        message: "",
        reason: "",
        details: None,
        code: 0,
    })
}

/// A command that exited with `code`; `err` is the runtime's own description (containerd:
/// [`containerd_exit_error`]).
pub fn exit_status(code: i32, err: &str, shape: StatusShape) -> Vec<u8> {
    let message = format!("command terminated with non-zero exit code: {err}");
    let code_text = code.to_string();
    render(StatusJson {
        metadata: metadata(shape),
        status: STATUS_FAILURE,
        message: &message,
        reason: REASON_NON_ZERO_EXIT_CODE,
        details: Some(Details {
            causes: vec![Cause {
                reason: CAUSE_EXIT_CODE,
                message: &code_text,
            }],
        }),
        code: 0,
    })
}

/// The runtime failed (not the command); `err` is e.g. "error executing command in
/// container: …" or "error attaching to container: …".
pub fn internal_error_status(err: &str, shape: StatusShape) -> Vec<u8> {
    let message = format!("Internal error occurred: {err}");
    render(StatusJson {
        metadata: metadata(shape),
        status: STATUS_FAILURE,
        message: &message,
        reason: REASON_INTERNAL_ERROR,
        details: (shape == StatusShape::Metav1).then(|| Details {
            causes: vec![Cause {
                reason: "",
                message: err,
            }],
        }),
        code: 500,
    })
}

/// containerd's text for a non-zero exit, which ends up inside the status message.
pub fn containerd_exit_error(cmd: &[String], code: i32) -> String {
    format!(
        "error executing command [{}], exit code {code}",
        cmd.join(" ")
    )
}

/// What the remote command came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExitStatus {
    Success,
    /// A non-zero-exit status (client-go also accepts a cause saying 0).
    Exit(u8),
    /// A failure that is not an exit code: the server's message.
    Error(String),
}

impl std::fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExitStatus::Success => f.write_str("success"),
            ExitStatus::Exit(n) => write!(f, "command terminated with exit code {n}"),
            ExitStatus::Error(m) => f.write_str(m),
        }
    }
}

/// A v4+ error stream that client-go could not interpret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatusError {
    #[error("error stream protocol error: {error} in {text:?}")]
    Json { error: String, text: String },
    #[error("error stream protocol error: details must be set")]
    DetailsMissing,
    #[error("error stream protocol error: invalid exit code value {0:?}")]
    InvalidExitCode(String),
    #[error("error stream protocol error: no ExitCode cause given")]
    NoExitCodeCause,
    #[error("error stream protocol error: unknown error")]
    Unknown,
}

/// Decodes everything read from a v4/v5 error stream (empty means success).
pub fn parse_status_v4(bytes: &[u8]) -> Result<ExitStatus, StatusError> {
    if bytes.is_empty() {
        return Ok(ExitStatus::Success);
    }
    let text = String::from_utf8_lossy(bytes).into_owned();
    let bad = |error: String| StatusError::Json {
        error,
        text: text.clone(),
    };
    let value: Value = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
    let obj = match &value {
        Value::Object(o) => o,
        Value::Null => &Map::new(),
        other => return Err(bad(format!("status is {}, not an object", kind(other)))),
    };
    let status = string_field(obj, "status").map_err(bad)?;
    match status.as_str() {
        STATUS_SUCCESS => return Ok(ExitStatus::Success),
        STATUS_FAILURE => {}
        _ => return Err(StatusError::Unknown),
    }
    if string_field(obj, "reason").map_err(bad)? != REASON_NON_ZERO_EXIT_CODE {
        return Ok(ExitStatus::Error(
            string_field(obj, "message").map_err(bad)?,
        ));
    }
    let details = match field(obj, "details") {
        None | Some(Value::Null) => return Err(StatusError::DetailsMissing),
        Some(Value::Object(d)) => d,
        Some(other) => return Err(bad(format!("details is {}, not an object", kind(other)))),
    };
    let causes = match field(details, "causes") {
        None | Some(Value::Null) => &Vec::new(),
        Some(Value::Array(c)) => c,
        Some(other) => return Err(bad(format!("causes is {}, not an array", kind(other)))),
    };
    for cause in causes {
        let Value::Object(cause) = cause else {
            continue;
        };
        if string_field(cause, "reason").map_err(bad)? != CAUSE_EXIT_CODE {
            continue;
        }
        let message = string_field(cause, "message").map_err(bad)?;
        return parse_u8(&message)
            .map(ExitStatus::Exit)
            .ok_or(StatusError::InvalidExitCode(message));
    }
    Err(StatusError::NoExitCodeCause)
}

/// v1–v3 error streams: nothing on success, the message text on failure.
pub fn parse_status_v1(bytes: &[u8]) -> ExitStatus {
    if bytes.is_empty() {
        ExitStatus::Success
    } else {
        ExitStatus::Error(String::from_utf8_lossy(bytes).into_owned())
    }
}

/// What a v1–v3 server writes: nothing on success, else the failure message.
pub fn status_v1(failure: Option<&str>) -> Vec<u8> {
    failure.map(|m| m.as_bytes().to_vec()).unwrap_or_default()
}

/// Go's `ParseUint(s, 10, 8)`: ASCII digits only, no sign, at most 255.
fn parse_u8(s: &str) -> Option<u8> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<u64>().ok().and_then(|n| u8::try_from(n).ok())
}

/// Go's JSON decoding matches keys case-insensitively, preferring an exact match.
fn field<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    obj.get(name).or_else(|| {
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })
}

fn string_field(obj: &Map<String, Value>, name: &str) -> Result<String, String> {
    match field(obj, name) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(format!("{name} is {}, not a string", kind(other))),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(v: Vec<u8>) -> String {
        String::from_utf8(v).expect("utf-8")
    }

    #[test]
    fn builds_both_shapes() {
        assert_eq!(
            text(success_status(StatusShape::CriStreaming)),
            r#"{"status":"Success"}"#
        );
        assert_eq!(
            text(success_status(StatusShape::Metav1)),
            r#"{"metadata":{},"status":"Success"}"#
        );
        let err = containerd_exit_error(&["sh".into(), "-c".into(), "exit 3".into()], 3);
        assert_eq!(err, "error executing command [sh -c exit 3], exit code 3");
        assert_eq!(
            text(exit_status(3, &err, StatusShape::CriStreaming)),
            r#"{"status":"Failure","message":"command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}"#
        );
        assert!(
            text(exit_status(3, &err, StatusShape::Metav1))
                .starts_with(r#"{"metadata":{},"status":"Failure","#)
        );
        assert_eq!(
            text(internal_error_status(
                "error executing command in container: boom",
                StatusShape::CriStreaming
            )),
            r#"{"status":"Failure","message":"Internal error occurred: error executing command in container: boom","reason":"InternalError","code":500}"#
        );
        assert_eq!(
            text(internal_error_status("boom", StatusShape::Metav1)),
            r#"{"metadata":{},"status":"Failure","message":"Internal error occurred: boom","reason":"InternalError","details":{"causes":[{"message":"boom"}]},"code":500}"#
        );
    }

    #[test]
    fn parses_what_it_builds() {
        for shape in [StatusShape::CriStreaming, StatusShape::Metav1] {
            assert_eq!(
                parse_status_v4(&success_status(shape)),
                Ok(ExitStatus::Success)
            );
            assert_eq!(
                parse_status_v4(&exit_status(3, "x", shape)),
                Ok(ExitStatus::Exit(3))
            );
            assert_eq!(
                parse_status_v4(&exit_status(255, "x", shape)),
                Ok(ExitStatus::Exit(255))
            );
            assert_eq!(
                parse_status_v4(&internal_error_status("boom", shape)),
                Ok(ExitStatus::Error("Internal error occurred: boom".into()))
            );
        }
        assert_eq!(parse_status_v4(b""), Ok(ExitStatus::Success));
        assert_eq!(
            ExitStatus::Exit(3).to_string(),
            "command terminated with exit code 3"
        );
    }

    #[test]
    fn follows_client_go_on_odd_statuses() {
        let err = |code: i32| parse_status_v4(&exit_status(code, "x", StatusShape::CriStreaming));
        assert_eq!(err(256), Err(StatusError::InvalidExitCode("256".into())));
        assert_eq!(err(-1), Err(StatusError::InvalidExitCode("-1".into())));
        assert_eq!(
            err(256).expect_err("256 must fail").to_string(),
            "error stream protocol error: invalid exit code value \"256\""
        );
        let p = |s: &str| parse_status_v4(s.as_bytes());
        assert_eq!(
            p(r#"{"status":"Failure","reason":"NonZeroExitCode"}"#),
            Err(StatusError::DetailsMissing)
        );
        assert_eq!(
            p(
                r#"{"status":"Failure","reason":"NonZeroExitCode","details":{"causes":[{"reason":"Other","message":"1"}]}}"#
            ),
            Err(StatusError::NoExitCodeCause)
        );
        assert_eq!(
            p(
                r#"{"status":"Failure","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"+1"}]}}"#
            ),
            Err(StatusError::InvalidExitCode("+1".into()))
        );
        assert_eq!(
            p(
                r#"{"status":"Failure","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"007"}]}}"#
            ),
            Ok(ExitStatus::Exit(7))
        );
        assert_eq!(p(r#"{"status":"Weird"}"#), Err(StatusError::Unknown));
        assert_eq!(p(r#"{}"#), Err(StatusError::Unknown));
        assert_eq!(p(r#"{"Status":"Success"}"#), Ok(ExitStatus::Success));
        assert_eq!(
            p(r#"{"status":"Failure"}"#),
            Ok(ExitStatus::Error(String::new()))
        );
        let e = p("not json").expect_err("garbage must fail");
        assert!(
            e.to_string()
                .starts_with("error stream protocol error: expected ident"),
            "{e}"
        );
        assert!(e.to_string().ends_with(r#" in "not json""#), "{e}");
        assert!(p(r#"{"status":5}"#).is_err());
    }

    #[test]
    fn plain_text_versions() {
        assert_eq!(parse_status_v1(b""), ExitStatus::Success);
        assert_eq!(parse_status_v1(b"boom"), ExitStatus::Error("boom".into()));
        assert!(status_v1(None).is_empty());
        assert_eq!(status_v1(Some("boom")), b"boom");
    }
}
