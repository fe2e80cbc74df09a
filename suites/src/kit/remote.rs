//! What the streaming cases (exec, attach, port-forward, the URLs themselves) share: the
//! protocol offer client-go makes, the session deadline, a running probe to stream to, and the
//! request shapes.

use std::time::Duration;

use cricket_harness::streaming::StdioWanted;
use cricket_harness::{CaseError, Cx, cri};
use cricket_stream::remotecommand as rc;

use super::objects as kit;
use super::wait::wait_running;

/// Offered as client-go's SPDY executor offers them.
pub const SPDY: &[&str] = &rc::SPDY_CLIENT_PROTOCOLS;
/// A session may take this long from connect to status.
pub const SESSION: Duration = Duration::from_secs(30);

/// stdout and stderr, no stdin, no terminal: what `crictl exec` asks for by default.
pub const OUT_ERR: StdioWanted = StdioWanted {
    stdin: false,
    stdout: true,
    stderr: true,
    tty: false,
};

/// stdin, stdout and stderr, no terminal: `kubectl exec -i`, `kubectl attach -i`.
pub const IN_OUT_ERR: StdioWanted = StdioWanted {
    stdin: true,
    stdout: true,
    stderr: true,
    tty: false,
};

/// An interactive terminal: stdin, stdout on the terminal, no stderr (api.proto forbids it).
pub const TTY: StdioWanted = StdioWanted {
    stdin: true,
    stdout: true,
    stderr: false,
    tty: true,
};

/// A streaming step that went wrong, at `check`, saying what was being done.
pub fn failure(check: &'static str, what: &str, e: String) -> CaseError {
    CaseError::fail(check, format!("{what}: {e}"))
}

/// A pod with one running probe container (`sleep inf`); returns (pod, container).
pub async fn running(cx: &Cx) -> Result<(String, String), CaseError> {
    let (image, _) = cx.step("pull probe", kit::pull(cx, "probe")).await?;
    let (pod, _, id, _) =
        kit::pod_with_container(cx, &image, &["/bin/probe", "sleep", "inf"]).await?;
    cx.step("running", wait_running(cx, &id, Duration::from_secs(30)))
        .await?;
    Ok((pod, id))
}

pub fn exec_req(id: &str, cmd: &[&str], want: StdioWanted) -> cri::ExecRequest {
    cri::ExecRequest {
        container_id: id.to_string(),
        cmd: kit::s(cmd),
        tty: want.tty,
        stdin: want.stdin,
        stdout: want.stdout,
        stderr: want.stderr,
    }
}

pub fn attach_req(id: &str, want: StdioWanted) -> cri::AttachRequest {
    cri::AttachRequest {
        container_id: id.to_string(),
        stdin: want.stdin,
        tty: want.tty,
        stdout: want.stdout,
        stderr: want.stderr,
    }
}

/// Expects `r` to be refused with `code`: a success or another code fails at `check`.
pub fn expect_refused<T: std::fmt::Debug>(
    check: &'static str,
    code: tonic::Code,
    r: Result<T, tonic::Status>,
    what: &str,
) -> Result<(), CaseError> {
    let s = kit::expect_err(check, r, what)?;
    kit::expect_code(check, code, &s, what)
}
