//! Area `streaming`, over WebSocket: the same URLs speak the channel.k8s.io family when the
//! request is a WebSocket upgrade — what browsers, Python's kubernetes client and client-go's
//! WebSocket executor send. Exec in binary and base64 framing, v5's stdin close, and
//! port-forward's channel pairs with their port prefix.

use std::time::Duration;

use cricket_harness::streaming::{RemoteCommand, websocket_exchange};
use cricket_harness::{CaseDef, CaseError, Cx, Req, Suite, Tag, case_fn, cri, ensure, ensure_eq};
use cricket_stream::remotecommand::{self as rc, ExitStatus};

use crate::kit;
use crate::kit::remote::{IN_OUT_ERR, OUT_ERR, SESSION, exec_req, failure, running};

const T: &[Tag] = &[Tag::Conformance, Tag::Streaming];

const CHANNELS: Req = Req {
    rpc: "Exec",
    rule: "Kubernetes streaming over WebSocket (channel.k8s.io family): a binary message is a channel byte then payload (0 stdin, 1 stdout, 2 stderr, 3 error, 4 resize); v4.channel.k8s.io carries the exit status as JSON on channel 3.",
};
const BASE64: Req = Req {
    rpc: "Exec",
    rule: "v4.base64.channel.k8s.io: text messages whose first character is the channel as an ASCII digit and whose rest is the payload, base64-encoded.",
};
const CLOSE: Req = Req {
    rpc: "Exec",
    rule: "v5.channel.k8s.io (Kubernetes 1.30+) adds stream close: the message [255, channel] ends that input channel, so a command reading stdin sees EOF.",
};
const PORT_CHANNELS: Req = Req {
    rpc: "PortForward",
    rule: "Port-forward over WebSocket: port i of the request uses channel 2i for data and 2i+1 for errors, and the first message on each carries the port, little-endian.",
};

async fn exec_over(cx: &Cx, protocol: &'static str, check: &'static str) -> Result<(), CaseError> {
    let (_, id) = running(cx).await?;
    let url = cx.cri().exec(exec_req(&id, &["/bin/probe", "streams", "to-stdout", "to-stderr", "3"], OUT_ERR)).await?.url;
    let s = cx
        .step(&format!("connect offering {protocol}"), async {
            RemoteCommand::websocket(&url, &[protocol], OUT_ERR, SESSION)
                .await
                .map_err(|e| failure(check, &format!("a WebSocket upgrade offering {protocol}"), e))
        })
        .await?;
    ensure_eq!(check, protocol, s.protocol.as_str(), "subprotocol chosen");
    let out = s.finish(SESSION).await.map_err(|e| failure("streaming.websocket.session_ends", "the exec session", e))?;
    ensure_eq!("streaming.websocket.stdout_equal", "to-stdout\n", String::from_utf8_lossy(&out.stdout), "channel 1 (stdout)");
    ensure_eq!("streaming.websocket.stderr_equal", "to-stderr\n", String::from_utf8_lossy(&out.stderr), "channel 2 (stderr)");
    ensure_eq!("streaming.websocket.exit_code", ExitStatus::Exit(3), out.status, "status on channel 3 of `exit 3`");
    Ok(())
}

async fn exec_v4(cx: &Cx) -> Result<(), CaseError> {
    exec_over(cx, rc::PROTOCOL_V4, "streaming.websocket.v4_accepted").await
}

async fn exec_base64(cx: &Cx) -> Result<(), CaseError> {
    exec_over(cx, "v4.base64.channel.k8s.io", "streaming.websocket.base64_accepted").await
}

async fn exec_v5_stdin_close(cx: &Cx) -> Result<(), CaseError> {
    let (_, id) = running(cx).await?;
    let want = IN_OUT_ERR;
    let url = cx.cri().exec(exec_req(&id, &["/bin/probe", "stdin"], want)).await?.url;
    let mut s = cx
        .step("connect offering v5.channel.k8s.io", async {
            RemoteCommand::websocket(&url, &[rc::PROTOCOL_V5], want, SESSION)
                .await
                .map_err(|e| failure("streaming.websocket.v5_accepted", "a WebSocket upgrade offering v5.channel.k8s.io, as client-go's WebSocket executor does", e))
        })
        .await?;
    cx.step("stdin, then [255, 0]", async {
        s.write_stdin(b"closed by v5\n").await.map_err(|e| CaseError::fail("streaming.websocket.stdin_accepted", e.to_string()))?;
        s.close_stdin().await.map_err(|e| CaseError::fail("streaming.websocket.stdin_accepted", e))
    })
    .await?;
    let out = s
        .finish(Duration::from_secs(10))
        .await
        .map_err(|e| failure("streaming.websocket.stdin_close_ends", "cat after [255, 0] (EOF must reach it)", e))?;
    ensure_eq!("streaming.websocket.stdout_equal", "closed by v5\n", String::from_utf8_lossy(&out.stdout), "cat's stdout");
    ensure_eq!("streaming.websocket.exit_code", ExitStatus::Success, out.status, "status");
    Ok(())
}

async fn port_forward(cx: &Cx) -> Result<(), CaseError> {
    let (image, _) = cx.step("pull probe", kit::pull(cx, "probe")).await?;
    let (pod, pod_cfg) = kit::run_pod(cx, "forward").await?;
    let cfg = kit::container_config(cx, "server", &image, &["/bin/probe", "http", "8080", "over a websocket"]);
    let log = kit::log_file(&pod_cfg, &cfg);
    let id = kit::create_container(cx, &pod, &pod_cfg, cfg).await?;
    kit::start(cx, &id).await?;
    cx.step("the server listens", kit::wait_log("streaming.port_forward.server_ready", &log, "listening on", Duration::from_secs(20))).await?;
    let url = cx
        .cri()
        .port_forward(cri::PortForwardRequest {
            pod_sandbox_id: pod.clone(),
            port: vec![8080],
        })
        .await?
        .url;
    let got = cx
        .step("GET / on channel 0", async {
            websocket_exchange(&url, rc::PROTOCOL_V4, &[b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n"], SESSION)
                .await
                .map_err(|e| failure("streaming.websocket.port_forward_accepted", "port-forward over WebSocket (v4.channel.k8s.io)", e))
        })
        .await?;
    let Some(port) = got.first() else {
        return Err(CaseError::fail("streaming.websocket.port_prefix", "no channel of port 8080 was seen"));
    };
    ensure_eq!("streaming.websocket.port_prefix", (Some(8080), Some(8080)), port.prefixes, "ports named by the first message of channels 0 and 1");
    let text = String::from_utf8_lossy(&port.data);
    ensure!("streaming.websocket.port_forward_round_trip", text.starts_with("HTTP/1.") && text.ends_with("over a websocket"), "the pod's answer on channel 0: {text:?}");
    ensure_eq!("streaming.websocket.port_forward_no_error", "", port.error, "channel 1 (errors) of a connection that worked");
    Ok(())
}

pub const CASES: &[CaseDef] = &[
    CaseDef {
        id: "streaming.websocket.exec_v4",
        suite: Suite::Conformance,
        summary: "exec over WebSocket, v4.channel.k8s.io: stdout and stderr on their channels, the exit code on channel 3",
        reqs: &[CHANNELS],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(60),
        run: case_fn!(exec_v4),
    },
    CaseDef {
        id: "streaming.websocket.exec_base64",
        suite: Suite::Conformance,
        summary: "exec over WebSocket, v4.base64.channel.k8s.io: the same, as base64 text messages",
        reqs: &[CHANNELS, BASE64],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(60),
        run: case_fn!(exec_base64),
    },
    CaseDef {
        id: "streaming.websocket.exec_v5_stdin_close",
        suite: Suite::Conformance,
        summary: "exec over WebSocket, v5.channel.k8s.io: [255, 0] ends the command's stdin",
        reqs: &[CLOSE],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(60),
        run: case_fn!(exec_v5_stdin_close),
    },
    CaseDef {
        id: "streaming.websocket.port_forward",
        suite: Suite::Conformance,
        summary: "port-forward over WebSocket: the port prefix on both channels, an HTTP exchange on the data channel",
        reqs: &[PORT_CHANNELS],
        tags: &[Tag::Conformance, Tag::Streaming, Tag::Network],
        needs: &[],
        timeout: Duration::from_secs(60),
        run: case_fn!(port_forward),
    },
];
