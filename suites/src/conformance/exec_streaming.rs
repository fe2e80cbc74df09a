//! Area `streaming`, exec: every `kubectl exec` and `crictl exec` goes through the URL Exec
//! returns, so these cases connect to it and stream over SPDY/3.1 (what kubelet and critest
//! use): output separated by stream, exit codes on the error stream, stdin and its end,
//! terminals and their size, megabytes each way, parallel sessions, stdin ending when its
//! client goes. Each waits with a hard deadline, so a hung stream fails the case, never the
//! run.

use std::time::Duration;

use cricket_harness::streaming::{Output, RemoteCommand, StdioWanted};
use cricket_harness::{CaseDef, CaseError, Cx, Req, Suite, Tag, case_fn, cri, ensure, ensure_eq};
use cricket_stream::remotecommand::{self as rc, ExitStatus};

use crate::kit;
use crate::kit::remote::{IN_OUT_ERR, OUT_ERR, SESSION, SPDY, TTY, exec_req, expect_refused, failure, running};

const T: &[Tag] = &[Tag::Conformance, Tag::Streaming];

const EXEC: Req = Req {
    rpc: "Exec",
    rule: "Exec prepares a streaming endpoint to execute a command in the container.",
};
const EXEC_STREAMS: Req = Req {
    rpc: "Exec",
    rule: "Whether to stream stdin / stdout / stderr. One of `stdin`, `stdout`, and `stderr` MUST be true. If `tty` is true, `stderr` MUST be false. Multiplexing is not supported for `tty`: the stdout and stderr streams are combined into a single stream.",
};
const REMOTECOMMAND: Req = Req {
    rpc: "Exec",
    rule: "Kubernetes remotecommand v4 (the protocol kubelet and client-go speak on the URL): the command's exit status comes back on the error stream as a Status, a non-zero exit code as reason NonZeroExitCode with the code in details.causes[ExitCode].",
};
const RESIZE: Req = Req {
    rpc: "Exec",
    rule: "remotecommand v3+: with a tty, the client sends terminal sizes on the resize stream and the process sees its terminal resized.",
};
const DISCONNECT: Req = Req {
    rpc: "Exec",
    rule: "remotecommand: the server copies the client's stdin stream to the command and closes the command's stdin when that stream ends; a client that goes ends all its streams, so a command reading stdin does not outlive its client.",
};
const DISCONNECT_KILLS: Req = Req {
    rpc: "Exec",
    rule: "No api.proto or remotecommand sentence requires this, so the case says where it comes from: to its user an exec session is the command's lifetime (an interrupted `kubectl exec` should leave no process behind in the container), so the runtime ends a command whose client has disconnected. Runtimes differ here; the expectations file of each says how.",
};

/// Exec over SPDY (offering client-go's list) to a finished session's output.
async fn exec_spdy(cx: &Cx, id: &str, cmd: &[&str], want: StdioWanted) -> Result<Output, CaseError> {
    let url = cx.cri().exec(exec_req(id, cmd, want)).await?.url;
    let rcmd = RemoteCommand::spdy(&url, SPDY, want, SESSION)
        .await
        .map_err(|e| failure("streaming.exec.connects", "connecting to the Exec URL", e))?;
    ensure_eq!(
        "streaming.exec.negotiates_v4",
        rc::PROTOCOL_V4,
        rcmd.protocol.as_str(),
        "protocol negotiated for client-go's offer (v5..v1): the Kubernetes streaming server picks v4"
    );
    rcmd.finish(SESSION)
        .await
        .map_err(|e| failure("streaming.exec.session_ends", "the exec session", e))
}

async fn stdout_stderr(cx: &Cx) -> Result<(), CaseError> {
    let (_, id) = running(cx).await?;
    let out = cx
        .step("exec streams", exec_spdy(cx, &id, &["/bin/probe", "streams", "to-stdout", "to-stderr"], OUT_ERR))
        .await?;
    ensure_eq!("streaming.exec.stdout_equal", "to-stdout\n", String::from_utf8_lossy(&out.stdout), "stdout of the exec");
    ensure_eq!("streaming.exec.stderr_equal", "to-stderr\n", String::from_utf8_lossy(&out.stderr), "stderr of the exec, a stream of its own");
    ensure_eq!("streaming.exec.status_success", ExitStatus::Success, out.status, "status on the error stream");
    Ok(())
}

async fn exit_codes(cx: &Cx) -> Result<(), CaseError> {
    let (_, id) = running(cx).await?;
    for (code, want) in [(0u8, ExitStatus::Success), (1, ExitStatus::Exit(1)), (137, ExitStatus::Exit(137))] {
        let c = code.to_string();
        let out = cx
            .step(&format!("exit {code}"), exec_spdy(cx, &id, &["/bin/probe", "exit", &c], OUT_ERR))
            .await?;
        ensure_eq!("streaming.exec.exit_code", want, out.status, "status of `exit {code}` on the error stream");
    }
    Ok(())
}

async fn stdin_eof(cx: &Cx) -> Result<(), CaseError> {
    let (_, id) = running(cx).await?;
    let want = IN_OUT_ERR;
    let url = cx.cri().exec(exec_req(&id, &["/bin/probe", "stdin"], want)).await?.url;
    let mut s = cx
        .step("connect", async {
            RemoteCommand::spdy(&url, SPDY, want, SESSION)
                .await
                .map_err(|e| failure("streaming.exec.connects", "connecting", e))
        })
        .await?;
    cx.step("stdin, then its end", async {
        s.write_stdin(b"hello over stdin\n")
            .await
            .map_err(|e| CaseError::fail("streaming.exec.stdin_accepted", e.to_string()))?;
        s.close_stdin()
            .await
            .map_err(|e| CaseError::fail("streaming.exec.stdin_accepted", e))
    })
    .await?;
    let out = s
        .finish(SESSION)
        .await
        .map_err(|e| failure("streaming.exec.stdin_eof_ends", "cat after its stdin ended (EOF must reach it)", e))?;
    ensure_eq!("streaming.exec.stdin_round_trip", "hello over stdin\n", String::from_utf8_lossy(&out.stdout), "cat's stdout");
    ensure_eq!("streaming.exec.status_success", ExitStatus::Success, out.status, "status");
    Ok(())
}


async fn tty(cx: &Cx) -> Result<(), CaseError> {
    let (_, id) = running(cx).await?;
    let out = cx.step("exec winsize on a tty", exec_spdy(cx, &id, &["/bin/probe", "winsize"], TTY)).await?;
    let text = String::from_utf8_lossy(&out.stdout);
    ensure!(
        "streaming.exec.tty_is_terminal",
        text.contains("rows=") && text.contains("cols="),
        "with tty the process's stdin must be a terminal; it printed {text:?}"
    );
    ensure_eq!("streaming.exec.status_success", ExitStatus::Success, out.status, "status");
    Ok(())
}

async fn tty_resize(cx: &Cx) -> Result<(), CaseError> {
    let (_, id) = running(cx).await?;
    let url = cx
        .cri()
        .exec(exec_req(&id, &["/bin/probe", "winsize", "--changes", "1"], TTY))
        .await?
        .url;
    let mut s = cx
        .step("connect", async {
            RemoteCommand::spdy(&url, SPDY, TTY, SESSION)
                .await
                .map_err(|e| failure("streaming.exec.connects", "connecting", e))
        })
        .await?;
    cx.step("first size", async {
        s.stdout_until(b"cols=", Duration::from_secs(10))
            .await
            .map(drop)
            .map_err(|e| CaseError::fail("streaming.exec.tty_is_terminal", e))
    })
    .await?;
    cx.step("resize to 132x43", async {
        s.resize(132, 43)
            .await
            .map_err(|e| CaseError::fail("streaming.exec.resize_sent", e))?;
        s.stdout_until(b"rows=43 cols=132", Duration::from_secs(10))
            .await
            .map(drop)
            .map_err(|e| CaseError::fail("streaming.exec.resize_reaches_process", e))
    })
    .await?;
    let out = s.finish(SESSION).await.map_err(|e| failure("streaming.exec.session_ends", "after the resize", e))?;
    ensure_eq!("streaming.exec.status_success", ExitStatus::Success, out.status, "status");
    Ok(())
}

async fn large_output(cx: &Cx) -> Result<(), CaseError> {
    let (_, id) = running(cx).await?;
    // 2 MiB out: 128 lines of 16 KiB.
    let out = cx
        .step("2 MiB of stdout", exec_spdy(cx, &id, &["/bin/probe", "log", "--count", "128", "--size", "16383"], OUT_ERR))
        .await?;
    ensure_eq!("streaming.exec.large_output_complete", 128 * 16384, out.stdout.len(), "bytes of stdout");
    ensure!(
        "streaming.exec.large_output_complete",
        out.stdout.chunks(16384).all(|l| l.len() == 16384 && l[..16383].iter().all(|&b| b == b'x') && l[16383] == b'\n'),
        "stdout is not 128 lines of 16383 x's"
    );
    // 2 MiB in and back out through cat.
    let want = StdioWanted {
        stdin: true,
        stdout: true,
        stderr: false,
        tty: false,
    };
    let url = cx.cri().exec(exec_req(&id, &["/bin/probe", "stdin"], want)).await?.url;
    let data: Vec<u8> = (0..2u32 << 20).map(|i| b"cricket!"[(i % 8) as usize]).collect();
    let s = cx
        .step("2 MiB through cat", async {
            let mut s = RemoteCommand::spdy(&url, SPDY, want, SESSION)
                .await
                .map_err(|e| failure("streaming.exec.connects", "connecting", e))?;
            // cat writes back while we write: stdout is read at the same time by `finish`.
            let writer = async {
                s.write_stdin(&data).await.map_err(|e| CaseError::fail("streaming.exec.stdin_accepted", e.to_string()))?;
                s.close_stdin().await.map_err(|e| CaseError::fail("streaming.exec.stdin_accepted", e))?;
                Ok::<_, CaseError>(s)
            };
            writer.await
        })
        .await?;
    let back = s
        .finish(SESSION)
        .await
        .map_err(|e| failure("streaming.exec.session_ends", "2 MiB through cat", e))?;
    ensure_eq!("streaming.exec.large_input_complete", data.len(), back.stdout.len(), "bytes cat sent back");
    ensure!("streaming.exec.large_input_complete", back.stdout == data, "cat sent back other bytes than it got");
    Ok(())
}

async fn parallel_sessions(cx: &Cx) -> Result<(), CaseError> {
    let (_, id) = running(cx).await?;
    let runs = (0..4).map(|i| {
        let id = id.clone();
        async move {
            let (o, e) = (format!("out-{i}"), format!("err-{i}"));
            let out = exec_spdy(cx, &id, &["/bin/probe", "streams", &o, &e], OUT_ERR).await?;
            Ok::<_, CaseError>((i, o, e, out))
        }
    });
    let results = cx.step("4 sessions at once", async { Ok(futures::future::join_all(runs).await) }).await?;
    for r in results {
        let (i, o, e, out) = r?;
        ensure_eq!("streaming.exec.sessions_independent", format!("{o}\n"), String::from_utf8_lossy(&out.stdout), "stdout of session {i}");
        ensure_eq!("streaming.exec.sessions_independent", format!("{e}\n"), String::from_utf8_lossy(&out.stderr), "stderr of session {i}");
    }
    Ok(())
}

async fn protocol_mismatch(cx: &Cx) -> Result<(), CaseError> {
    let (_, id) = running(cx).await?;
    let url = cx.cri().exec(exec_req(&id, &["/bin/probe", "true"], OUT_ERR)).await?.url;
    let r = cx
        .step("offer only v99.channel.k8s.io", async {
            Ok(RemoteCommand::spdy(&url, &["v99.channel.k8s.io"], OUT_ERR, SESSION).await)
        })
        .await?;
    let e = match r {
        Ok(s) => {
            return Err(CaseError::mismatch(
                "streaming.upgrade.mismatch_refused",
                "a protocol no server speaks was accepted",
                "HTTP 403",
                format!("101, protocol {}", s.protocol),
            ));
        }
        Err(e) => e,
    };
    ensure!(
        "streaming.upgrade.mismatch_refused",
        e.contains("HTTP 403"),
        "an unknown protocol must be refused with 403 Forbidden: {e}"
    );
    Ok(())
}

/// Starts `cmd` (which prints `pid=N` first) over SPDY with `want`, reads its pid, and
/// disconnects without a word.
async fn start_then_leave(cx: &Cx, id: &str, cmd: &[&str], want: StdioWanted) -> Result<u32, CaseError> {
    let url = cx.cri().exec(exec_req(id, cmd, want)).await?.url;
    let mut s = RemoteCommand::spdy(&url, SPDY, want, SESSION)
        .await
        .map_err(|e| failure("streaming.exec.connects", "connecting", e))?;
    let seen = s
        .stdout_until(b"\n", Duration::from_secs(10))
        .await
        .map_err(|e| CaseError::fail("streaming.exec.stdout_equal", e))?;
    s.disconnect();
    let text = String::from_utf8_lossy(&seen).to_string();
    text.trim()
        .strip_prefix("pid=")
        .and_then(|p| p.parse::<u32>().ok())
        .ok_or_else(|| CaseError::fail("streaming.exec.stdout_equal", format!("{} printed {text:?}", cmd.join(" "))))
}

/// Polls, from inside the container, until `pid` is gone; fails with `check` after 10 s.
async fn gone_within(cx: &Cx, id: &str, pid: u32, check: &'static str, what: &str) -> Result<(), CaseError> {
    let start = std::time::Instant::now();
    loop {
        let r = kit::exec(cx, id, &["/bin/probe", "stat", &format!("/proc/{pid}")], 10).await?;
        if r.exit_code != 0 {
            return Ok(());
        }
        if start.elapsed() > Duration::from_secs(10) {
            return Err(CaseError::fail(check, format!("{what} (pid {pid} in the container) still runs 10 s after its client disconnected")));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn disconnect_ends_stdin(cx: &Cx) -> Result<(), CaseError> {
    let (_, id) = running(cx).await?;
    let want = StdioWanted {
        stdin: true,
        stdout: true,
        stderr: false,
        tty: false,
    };
    let pid = cx
        .step("start a command that reads stdin to its end", start_then_leave(cx, &id, &["/bin/probe", "pidcat"], want))
        .await?;
    cx.step(
        "its stdin ends with the client",
        gone_within(cx, &id, pid, "streaming.exec.disconnect_ends_stdin", "`probe pidcat`, which exits at the end of its stdin,"),
    )
    .await
}

async fn disconnect_kills(cx: &Cx) -> Result<(), CaseError> {
    let (_, id) = running(cx).await?;
    let want = StdioWanted {
        stdin: false,
        stdout: true,
        stderr: false,
        tty: false,
    };
    let pid = cx
        .step("start a command that ignores its client", start_then_leave(cx, &id, &["/bin/probe", "pidsleep", "600"], want))
        .await?;
    cx.step(
        "the command ends with its client",
        gone_within(cx, &id, pid, "streaming.exec.disconnect_kills", "`probe pidsleep 600`, which reads no stdin,"),
    )
    .await
}

async fn removed_container(cx: &Cx) -> Result<(), CaseError> {
    let (_, id) = running(cx).await?;
    let url = cx.cri().exec(exec_req(&id, &["/bin/probe", "true"], OUT_ERR)).await?.url;
    cx.step("remove the container", async {
        kit::stop(cx, &id, 0).await?;
        kit::remove(cx, &id).await
    })
    .await?;
    let r = cx.step("use the URL", async { Ok(RemoteCommand::spdy(&url, SPDY, OUT_ERR, SESSION).await) }).await?;
    match r {
        Err(_) => Ok(()),
        Ok(s) => {
            let out = s
                .finish(SESSION)
                .await
                .map_err(|e| failure("streaming.exec.session_ends", "exec in a removed container", e))?;
            ensure!(
                "streaming.exec.removed_container_refused",
                out.status != ExitStatus::Success,
                "exec in a removed container reported success"
            );
            Ok(())
        }
    }
}

async fn url(cx: &Cx) -> Result<(), CaseError> {
    let (_, id) = running(cx).await?;
    let url = cx.cri().exec(exec_req(&id, &["/bin/probe", "true"], OUT_ERR)).await?.url;
    ensure!("streaming.url.http", url.starts_with("http://") || url.starts_with("https://"), "streaming URL {url:?} is not http(s)");
    let out = exec_spdy(cx, &id, &["/bin/probe", "true"], OUT_ERR).await?;
    ensure_eq!("streaming.exec.status_success", ExitStatus::Success, out.status, "status of `true`");
    Ok(())
}

async fn refused(cx: &Cx, check: &'static str, code: tonic::Code, req: cri::ExecRequest, what: &str) -> Result<(), CaseError> {
    expect_refused(check, code, cx.cri().exec(req).await, what)
}

async fn validation(cx: &Cx) -> Result<(), CaseError> {
    let (_, id) = running(cx).await?;
    cx.step("tty with stderr", refused(cx, "streaming.exec.tty_stderr_refused", tonic::Code::InvalidArgument,
        exec_req(&id, &["/bin/probe", "true"], StdioWanted { stdin: false, stdout: true, stderr: true, tty: true }), "Exec with tty and stderr")).await?;
    cx.step("no stream", refused(cx, "streaming.exec.no_stream_refused", tonic::Code::InvalidArgument,
        exec_req(&id, &["/bin/probe", "true"], StdioWanted::default()), "Exec with none of stdin, stdout, stderr")).await?;
    cx.step("unknown container", refused(cx, "streaming.exec.unknown_container", tonic::Code::NotFound,
        exec_req(&"0".repeat(64), &["/bin/probe", "true"], OUT_ERR), "Exec in an unknown container")).await?;
    let (image, _) = kit::pull(cx, "probe").await?;
    let (p2, p2cfg) = kit::run_pod(cx, "exited").await?;
    let c = kit::create_container(cx, &p2, &p2cfg, kit::container_config(cx, "done", &image, &["/bin/probe", "true"])).await?;
    kit::start(cx, &c).await?;
    kit::wait_exited(cx, &c, Duration::from_secs(30)).await?;
    cx.step("exited container", refused(cx, "streaming.exec.not_running_refused", tonic::Code::FailedPrecondition,
        exec_req(&c, &["/bin/probe", "true"], OUT_ERR), "Exec in an exited container")).await
}

pub const CASES: &[CaseDef] = &[
    CaseDef {
        id: "streaming.exec.url",
        suite: Suite::Conformance,
        summary: "Exec for a running container returns an http(s) URL that runs the command",
        reqs: &[EXEC],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(60),
        run: case_fn!(url),
    },
    CaseDef {
        id: "streaming.exec.stdout_stderr",
        suite: Suite::Conformance,
        summary: "exec over SPDY: stdout and stderr arrive on their own streams, status Success",
        reqs: &[EXEC_STREAMS, REMOTECOMMAND],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(60),
        run: case_fn!(stdout_stderr),
    },
    CaseDef {
        id: "streaming.exec.exit_codes",
        suite: Suite::Conformance,
        summary: "exit codes 0, 1 and 137 come back on the error stream",
        reqs: &[REMOTECOMMAND],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(60),
        run: case_fn!(exit_codes),
    },
    CaseDef {
        id: "streaming.exec.stdin_eof",
        suite: Suite::Conformance,
        summary: "stdin reaches the command and its end (FIN) reaches it as EOF",
        reqs: &[EXEC_STREAMS],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(60),
        run: case_fn!(stdin_eof),
    },
    CaseDef {
        id: "streaming.exec.tty",
        suite: Suite::Conformance,
        summary: "with tty the command's stdin is a terminal",
        reqs: &[EXEC_STREAMS],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(60),
        run: case_fn!(tty),
    },
    CaseDef {
        id: "streaming.exec.tty_resize",
        suite: Suite::Conformance,
        summary: "a terminal size sent on the resize stream reaches the process (SIGWINCH, new size)",
        reqs: &[RESIZE],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(60),
        run: case_fn!(tty_resize),
    },
    CaseDef {
        id: "streaming.exec.large_output",
        suite: Suite::Conformance,
        summary: "2 MiB of stdout, and 2 MiB of stdin back through cat, arrive whole (past any 64 KiB window)",
        reqs: &[EXEC_STREAMS],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(90),
        run: case_fn!(large_output),
    },
    CaseDef {
        id: "streaming.exec.parallel_sessions",
        suite: Suite::Conformance,
        summary: "four exec sessions at once in one container each get their own output",
        reqs: &[EXEC],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(60),
        run: case_fn!(parallel_sessions),
    },
    CaseDef {
        id: "streaming.exec.protocol_mismatch",
        suite: Suite::Conformance,
        summary: "an upgrade offering no protocol the server speaks is refused with 403",
        reqs: &[REMOTECOMMAND],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(60),
        run: case_fn!(protocol_mismatch),
    },
    CaseDef {
        id: "streaming.exec.disconnect_ends_stdin",
        suite: Suite::Conformance,
        summary: "a client that disconnects ends its command's stdin, so a command reading it exits",
        reqs: &[DISCONNECT],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(60),
        run: case_fn!(disconnect_ends_stdin),
    },
    CaseDef {
        id: "streaming.exec.disconnect_kills",
        suite: Suite::Conformance,
        summary: "a client that disconnects takes its command with it, even one that reads no stdin",
        reqs: &[DISCONNECT_KILLS],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(60),
        run: case_fn!(disconnect_kills),
    },
    CaseDef {
        id: "streaming.exec.removed_container",
        suite: Suite::Conformance,
        summary: "the URL of a container removed since does not run the command",
        reqs: &[EXEC],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(60),
        run: case_fn!(removed_container),
    },
    CaseDef {
        id: "streaming.exec.validation",
        suite: Suite::Conformance,
        summary: "Exec refuses tty with stderr and no stream (InvalidArgument), an unknown container (NotFound) and an exited one (FailedPrecondition)",
        reqs: &[EXEC_STREAMS, EXEC],
        tags: &[Tag::Conformance, Tag::Streaming, Tag::Negative],
        needs: &[],
        timeout: Duration::from_secs(90),
        run: case_fn!(validation),
    },
];
