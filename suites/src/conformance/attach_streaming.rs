//! Area `streaming`, attach: `kubectl attach`, `crictl attach` and `kubectl run -i` connect to
//! the main process of a container created with `stdin` (and often `tty`). These cases attach
//! over SPDY/3.1 and check what users lean on: input reaching the process and its answer
//! coming back, stdout and stderr kept apart, a container's stdin outliving one session unless
//! `stdin_once` says otherwise, a terminal resized from the client, and the request rules.

use std::path::PathBuf;
use std::time::Duration;

use cricket_harness::streaming::{RemoteCommand, StdioWanted};
use cricket_harness::{CaseDef, CaseError, Cx, Req, Suite, Tag, case_fn, cri, ensure, ensure_eq};
use cricket_stream::remotecommand::ExitStatus;

use crate::kit;
use crate::kit::remote::{IN_OUT_ERR, SESSION, SPDY, TTY, attach_req, expect_refused, failure};

const T: &[Tag] = &[Tag::Conformance, Tag::Streaming];

const ATTACH: Req = Req {
    rpc: "Attach",
    rule: "Attach prepares a streaming endpoint to attach to a running container.",
};
const ATTACH_STREAMS: Req = Req {
    rpc: "Attach",
    rule: "Whether to stream stdin. One of `stdin`, `stdout`, and `stderr` MUST be true. If `tty` is true, `stderr` MUST be false. Multiplexing is not supported in this case. The output of stdout and stderr will be combined to a single stream.",
};
const ATTACH_TTY: Req = Req {
    rpc: "Attach",
    rule: "Whether the process being attached is running in a TTY. This must match the TTY setting in the ContainerConfig.",
};
const ATTACH_STDIN: Req = Req {
    rpc: "Attach",
    rule: "Whether to stream stdin (AttachRequest.stdin). The stream goes to the container's own stdin, which is kept open only when ContainerConfig.stdin asked for it (Kubernetes Container.stdin: \"If this is not set, reads from stdin in the container will always result in EOF\"), so an attach asking for the stdin of a container created without it cannot be honoured.",
};
const STDIN: Req = Req {
    rpc: "CreateContainer",
    rule: "ContainerConfig.stdin keeps the container's stdin open for attach (Kubernetes Container.stdin): without stdin_once it stays open across attach sessions, so a client that leaves does not end the process's input.",
};
const STDIN_ONCE: Req = Req {
    rpc: "CreateContainer",
    rule: "ContainerConfig.stdin_once (Kubernetes Container.stdinOnce): the runtime closes the container's stdin once the first attach session that streamed it ends, and it stays closed.",
};


struct Attached {
    id: String,
    log: PathBuf,
}

/// A pod with one container running `cmd` with the interactive settings given.
async fn interactive(cx: &Cx, cmd: &[&str], stdin_once: bool, tty: bool) -> Result<Attached, CaseError> {
    let (image, _) = cx.step("pull probe", kit::pull(cx, "probe")).await?;
    let (pod, pod_cfg) = kit::run_pod(cx, "attach").await?;
    let mut cfg = kit::container_config(cx, "attached", &image, cmd);
    cfg.stdin = true;
    cfg.stdin_once = stdin_once;
    cfg.tty = tty;
    let log = kit::log_file(&pod_cfg, &cfg);
    let id = kit::create_container(cx, &pod, &pod_cfg, cfg).await?;
    kit::start(cx, &id).await?;
    cx.step("running", kit::wait_running(cx, &id, Duration::from_secs(30))).await?;
    Ok(Attached { id, log })
}

async fn connect(cx: &Cx, id: &str, want: StdioWanted) -> Result<RemoteCommand, CaseError> {
    let url = cx.cri().attach(attach_req(id, want)).await?.url;
    RemoteCommand::spdy(&url, SPDY, want, SESSION)
        .await
        .map_err(|e| failure("streaming.attach.connects", "connecting to the Attach URL", e))
}

/// Writes `line` and waits for the process to echo it on stdout.
async fn echo(s: &mut RemoteCommand, line: &str, check: &'static str) -> Result<(), CaseError> {
    s.write_stdin(line.as_bytes())
        .await
        .map_err(|e| CaseError::fail("streaming.attach.stdin_accepted", e.to_string()))?;
    s.stdout_until(line.trim_end().as_bytes(), Duration::from_secs(10))
        .await
        .map(drop)
        .map_err(|e| CaseError::fail(check, format!("{line:?} written to stdin did not come back on stdout: {e}")))
}

async fn url(cx: &Cx) -> Result<(), CaseError> {
    let c = interactive(cx, &["/bin/probe", "cat"], false, false).await?;
    let url = cx.cri().attach(attach_req(&c.id, IN_OUT_ERR)).await?.url;
    ensure!("streaming.url.http", url.starts_with("http://") || url.starts_with("https://"), "streaming URL {url:?} is not http(s)");
    let mut s = RemoteCommand::spdy(&url, SPDY, IN_OUT_ERR, SESSION)
        .await
        .map_err(|e| failure("streaming.attach.connects", "connecting to the Attach URL", e))?;
    let idle = s.stdout_for(Duration::from_millis(500)).await;
    ensure!(
        "streaming.attach.quiet_while_idle",
        idle.is_empty(),
        "cat was given no input, yet the attach session's stdout carried {:?} in its first 500 ms",
        String::from_utf8_lossy(&idle)
    );
    cx.step("input, then its answer", echo(&mut s, "hello attach\n", "streaming.attach.output_after_input")).await
}

async fn stdout_stderr(cx: &Cx) -> Result<(), CaseError> {
    // stdin_once, so the end of this session's stdin ends `both` and with it the session.
    let c = interactive(cx, &["/bin/probe", "both"], true, false).await?;
    let mut s = connect(cx, &c.id, IN_OUT_ERR).await?;
    cx.step("two lines in, stdin closed", async {
        s.write_stdin(b"first\nsecond\n")
            .await
            .map_err(|e| CaseError::fail("streaming.attach.stdin_accepted", e.to_string()))?;
        s.close_stdin().await.map_err(|e| CaseError::fail("streaming.attach.stdin_accepted", e))
    })
    .await?;
    let out = s
        .finish(SESSION)
        .await
        .map_err(|e| failure("streaming.attach.session_ends", "attach to a process whose stdin was closed", e))?;
    ensure_eq!("streaming.attach.stdout_equal", "first\nsecond\n", String::from_utf8_lossy(&out.stdout), "stdout of the attached process");
    ensure_eq!("streaming.attach.stderr_equal", "first\nsecond\n", String::from_utf8_lossy(&out.stderr), "stderr of the attached process, a stream of its own");
    ensure_eq!("streaming.attach.status_success", ExitStatus::Success, out.status, "status on the error stream");
    Ok(())
}

async fn stdin_across_sessions(cx: &Cx) -> Result<(), CaseError> {
    let c = interactive(cx, &["/bin/probe", "cat"], false, false).await?;
    let mut first = connect(cx, &c.id, IN_OUT_ERR).await?;
    cx.step("first session", echo(&mut first, "one\n", "streaming.attach.output_after_input")).await?;
    first.disconnect();
    let mut second = cx.step("second session", connect(cx, &c.id, IN_OUT_ERR)).await?;
    cx.step("input in the second session", echo(&mut second, "two\n", "streaming.attach.stdin_survives_session")).await?;
    second.disconnect();
    let st = kit::container_status(cx, &c.id).await?;
    ensure_eq!(
        "streaming.attach.stdin_survives_session",
        cri::ContainerState::ContainerRunning as i32,
        st.state,
        "state after two attach sessions left (cat ends only when its stdin does)"
    );
    Ok(())
}

async fn stdin_once(cx: &Cx) -> Result<(), CaseError> {
    let c = interactive(cx, &["/bin/probe", "cat"], true, false).await?;
    let mut s = connect(cx, &c.id, IN_OUT_ERR).await?;
    cx.step("input", echo(&mut s, "only once\n", "streaming.attach.output_after_input")).await?;
    s.disconnect();
    cx.step("the container's stdin closes with the session", async {
        kit::wait_exited(cx, &c.id, Duration::from_secs(10))
            .await
            .map_err(|_| CaseError::fail("streaming.attach.stdin_once_closes", "cat, attached once with stdin_once, still runs 10 s after that session ended: its stdin was not closed"))
    })
    .await?;
    let st = kit::container_status(cx, &c.id).await?;
    ensure_eq!("streaming.attach.stdin_once_closes", 0, st.exit_code, "exit code of cat after its stdin ended");
    let log = std::fs::read_to_string(&c.log).unwrap_or_default();
    ensure!("streaming.attach.output_logged", log.contains("only once"), "attached output is also the container's log; {} has {log:?}", c.log.display());
    Ok(())
}

async fn tty_resize(cx: &Cx) -> Result<(), CaseError> {
    let c = interactive(cx, &["/bin/probe", "winsize", "--changes", "1"], false, true).await?;
    // The first size is printed once the process is ready for SIGWINCH.
    cx.step("the process reports its terminal", kit::wait_log("streaming.attach.tty_is_terminal", &c.log, "cols=", Duration::from_secs(10))).await?;
    let mut s = connect(cx, &c.id, TTY).await?;
    cx.step("resize to 132x43", async {
        s.resize(132, 43).await.map_err(|e| CaseError::fail("streaming.attach.resize_sent", e))?;
        s.stdout_until(b"rows=43 cols=132", Duration::from_secs(10))
            .await
            .map(drop)
            .map_err(|e| CaseError::fail("streaming.attach.resize_reaches_process", e))
    })
    .await?;
    let out = s.finish(SESSION).await.map_err(|e| failure("streaming.attach.session_ends", "after the process exited", e))?;
    ensure_eq!("streaming.attach.status_success", ExitStatus::Success, out.status, "status");
    Ok(())
}

async fn validation(cx: &Cx) -> Result<(), CaseError> {
    let c = interactive(cx, &["/bin/probe", "cat"], false, false).await?;
    let none = StdioWanted::default();
    let tty_err = StdioWanted { stdin: true, stdout: true, stderr: true, tty: true };
    cx.step("no stream", async {
        expect_refused("streaming.attach.no_stream_refused", tonic::Code::InvalidArgument, cx.cri().attach(attach_req(&c.id, none)).await, "Attach with none of stdin, stdout, stderr")
    })
    .await?;
    cx.step("tty with stderr", async {
        expect_refused("streaming.attach.tty_stderr_refused", tonic::Code::InvalidArgument, cx.cri().attach(attach_req(&c.id, tty_err)).await, "Attach with tty and stderr")
    })
    .await?;
    cx.step("unknown container", async {
        expect_refused("streaming.attach.unknown_container", tonic::Code::NotFound, cx.cri().attach(attach_req(&"0".repeat(64), IN_OUT_ERR)).await, "Attach to an unknown container")
    })
    .await
}

/// The request must agree with how the container was created: a terminal it does not have, no
/// terminal for one it has, or stdin it was not given.
async fn config_mismatch(cx: &Cx) -> Result<(), CaseError> {
    let plain = interactive(cx, &["/bin/probe", "cat"], false, false).await?;
    let tty = interactive(cx, &["/bin/probe", "cat"], false, true).await?;
    let (image, _) = cx.step("pull probe", kit::pull(cx, "probe")).await?;
    let (pod, pod_cfg) = kit::run_pod(cx, "no-stdin").await?;
    let cfg = kit::container_config(cx, "no-stdin", &image, &["/bin/probe", "sleep", "600"]);
    let no_stdin = kit::create_container(cx, &pod, &pod_cfg, cfg).await?;
    kit::start(cx, &no_stdin).await?;
    cx.step("running", kit::wait_running(cx, &no_stdin, Duration::from_secs(30))).await?;
    let out_only = StdioWanted { stdin: false, stdout: true, stderr: false, tty: true };
    cx.step("tty to a container without one", async {
        expect_refused("streaming.attach.tty_mismatch_refused", tonic::Code::InvalidArgument, cx.cri().attach(attach_req(&plain.id, out_only)).await, "Attach with tty to a container created without tty")
    })
    .await?;
    let no_tty = StdioWanted { stdin: true, stdout: true, stderr: false, tty: false };
    cx.step("no tty to a container with one", async {
        expect_refused("streaming.attach.tty_mismatch_refused", tonic::Code::InvalidArgument, cx.cri().attach(attach_req(&tty.id, no_tty)).await, "Attach without tty to a container created with tty")
    })
    .await?;
    cx.step("stdin to a container without it", async {
        expect_refused("streaming.attach.stdin_without_config_refused", tonic::Code::InvalidArgument, cx.cri().attach(attach_req(&no_stdin, IN_OUT_ERR)).await, "Attach with stdin to a container created without stdin")
    })
    .await
}

pub const CASES: &[CaseDef] = &[
    CaseDef {
        id: "streaming.attach.url",
        suite: Suite::Conformance,
        summary: "Attach returns an http(s) URL; input written there reaches the process and its answer comes back",
        reqs: &[ATTACH],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(60),
        run: case_fn!(url),
    },
    CaseDef {
        id: "streaming.attach.stdout_stderr",
        suite: Suite::Conformance,
        summary: "attach without tty: the process's stdout and stderr arrive on their own streams",
        reqs: &[ATTACH_STREAMS],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(60),
        run: case_fn!(stdout_stderr),
    },
    CaseDef {
        id: "streaming.attach.stdin_across_sessions",
        suite: Suite::Conformance,
        summary: "without stdin_once, a second attach session still reaches the process's stdin",
        reqs: &[STDIN],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(60),
        run: case_fn!(stdin_across_sessions),
    },
    CaseDef {
        id: "streaming.attach.stdin_once",
        suite: Suite::Conformance,
        summary: "with stdin_once, the end of the first attach session closes the container's stdin",
        reqs: &[STDIN_ONCE],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(60),
        run: case_fn!(stdin_once),
    },
    CaseDef {
        id: "streaming.attach.tty_resize",
        suite: Suite::Conformance,
        summary: "attach to a tty container: a size sent on the resize stream resizes its terminal",
        reqs: &[ATTACH_TTY],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(60),
        run: case_fn!(tty_resize),
    },
    CaseDef {
        id: "streaming.attach.validation",
        suite: Suite::Conformance,
        summary: "Attach with no stream, with tty and stderr, or to an unknown container is refused",
        reqs: &[ATTACH_STREAMS],
        tags: &[Tag::Conformance, Tag::Streaming, Tag::Negative],
        needs: &[],
        timeout: Duration::from_secs(60),
        run: case_fn!(validation),
    },
    CaseDef {
        id: "streaming.attach.config_mismatch_refused",
        suite: Suite::Conformance,
        summary: "Attach whose tty differs from the container's, or with stdin to a container created without stdin, is refused",
        reqs: &[ATTACH_TTY, ATTACH_STDIN],
        tags: &[Tag::Conformance, Tag::Streaming, Tag::Negative],
        needs: &[],
        timeout: Duration::from_secs(90),
        run: case_fn!(config_mismatch),
    },
];
