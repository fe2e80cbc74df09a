//! Area `streaming`, port-forward: `kubectl port-forward` and `crictl port-forward` reach a port
//! inside a pod through the URL PortForward returns, over SPDY/3.1 with `portforward.k8s.io`
//! (each connection a data and an error stream sharing a request id). These cases run a server
//! in the pod and talk to it: an HTTP exchange, two connections at once carrying a quarter
//! megabyte each, a port nothing listens on (an error, and the session still usable), and the
//! request rules.

use std::path::PathBuf;
use std::time::Duration;

use cricket_harness::streaming::PortForwardSession;
use cricket_harness::{CaseDef, CaseError, Cx, Req, Suite, Tag, case_fn, cri, ensure, ensure_eq};

use crate::kit;
use crate::kit::remote::{SESSION, expect_refused, failure};

const T: &[Tag] = &[Tag::Conformance, Tag::Streaming, Tag::Network];

const PORT_FORWARD: Req = Req {
    rpc: "PortForward",
    rule: "PortForward prepares a streaming endpoint to forward ports from a PodSandbox.",
};
const PAIRS: Req = Req {
    rpc: "PortForward",
    rule: "Kubernetes port-forward protocol (portforward.k8s.io over SPDY): every forwarded connection is a data and an error stream with one requestID; connections are independent, and a connection that cannot be made is reported on its error stream, not by ending the session.",
};

/// The port the servers in these pods listen on.
const PORT: u16 = 8080;

struct Served {
    pod: String,
}

/// A pod whose container runs `probe <server> 8080 …` and has said it listens.
async fn serving(cx: &Cx, server: &[&str]) -> Result<Served, CaseError> {
    let (image, _) = cx.step("pull probe", kit::pull(cx, "probe")).await?;
    let (pod, pod_cfg) = kit::run_pod(cx, "forward").await?;
    let mut cmd = vec!["/bin/probe"];
    cmd.extend_from_slice(server);
    let cfg = kit::container_config(cx, "server", &image, &cmd);
    let log: PathBuf = kit::log_file(&pod_cfg, &cfg);
    let id = kit::create_container(cx, &pod, &pod_cfg, cfg).await?;
    kit::start(cx, &id).await?;
    cx.step(
        "the server listens",
        kit::wait_log("streaming.port_forward.server_ready", &log, "listening on", Duration::from_secs(20)),
    )
    .await?;
    Ok(Served { pod })
}

fn forward_req(pod: &str, ports: &[i32]) -> cri::PortForwardRequest {
    cri::PortForwardRequest {
        pod_sandbox_id: pod.to_string(),
        port: ports.to_vec(),
    }
}

async fn session(cx: &Cx, pod: &str) -> Result<PortForwardSession, CaseError> {
    let url = cx.cri().port_forward(forward_req(pod, &[i32::from(PORT)])).await?.url;
    PortForwardSession::spdy(&url, SESSION)
        .await
        .map_err(|e| failure("streaming.port_forward.connects", "connecting to the PortForward URL", e))
}

const GET: &[u8] = b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n";

async fn url(cx: &Cx) -> Result<(), CaseError> {
    let s = serving(cx, &["http", "8080"]).await?;
    let url = cx.cri().port_forward(forward_req(&s.pod, &[i32::from(PORT)])).await?.url;
    ensure!("streaming.url.http", url.starts_with("http://") || url.starts_with("https://"), "streaming URL {url:?} is not http(s)");
    let session = PortForwardSession::spdy(&url, SESSION)
        .await
        .map_err(|e| failure("streaming.port_forward.connects", "connecting to the PortForward URL", e))?;
    session.close().await;
    Ok(())
}

async fn http_round_trip(cx: &Cx) -> Result<(), CaseError> {
    let s = serving(cx, &["http", "8080", "through the pod's port"]).await?;
    let mut session = session(cx, &s.pod).await?;
    let conn = cx
        .step("open a connection to 8080", async {
            session.connect(PORT).await.map_err(|e| failure("streaming.port_forward.stream_pair", "opening the stream pair", e))
        })
        .await?;
    let (answer, err) = cx
        .step("GET /", async {
            conn.round_trip(GET, SESSION).await.map_err(|e| failure("streaming.port_forward.round_trip", "an HTTP exchange", e))
        })
        .await?;
    let text = String::from_utf8_lossy(&answer);
    ensure!("streaming.port_forward.round_trip", text.starts_with("HTTP/1."), "the answer is not HTTP: {text:?}");
    ensure!("streaming.port_forward.round_trip", text.ends_with("through the pod's port"), "the body the pod's server sends did not come through whole: {text:?}");
    ensure_eq!("streaming.port_forward.no_error", "", err, "the error stream of a connection that worked");
    session.close().await;
    Ok(())
}

/// 256 KiB, a different byte pattern per connection.
fn payload(seed: u8) -> Vec<u8> {
    (0..256u32 << 10).map(|i| seed.wrapping_add((i % 251) as u8)).collect()
}

async fn two_connections(cx: &Cx) -> Result<(), CaseError> {
    let s = serving(cx, &["tcp-echo", "8080"]).await?;
    let mut session = session(cx, &s.pod).await?;
    let (a, b) = cx
        .step("open two connections", async {
            let a = session.connect(PORT).await.map_err(|e| failure("streaming.port_forward.stream_pair", "the first pair", e))?;
            let b = session.connect(PORT).await.map_err(|e| failure("streaming.port_forward.stream_pair", "the second pair", e))?;
            Ok((a, b))
        })
        .await?;
    let (pa, pb) = (payload(1), payload(101));
    let (ra, rb) = cx
        .step("256 KiB through each, at once", async {
            Ok(tokio::join!(a.round_trip(&pa, SESSION), b.round_trip(&pb, SESSION)))
        })
        .await?;
    for (name, r, sent) in [("first", ra, &pa), ("second", rb, &pb)] {
        let (back, err) = r.map_err(|e| failure("streaming.port_forward.round_trip", &format!("the {name} connection"), e))?;
        ensure_eq!("streaming.port_forward.connections_independent", sent.len(), back.len(), "bytes echoed on the {name} connection");
        ensure!("streaming.port_forward.connections_independent", back == *sent, "the {name} connection got other bytes back than it sent");
        ensure_eq!("streaming.port_forward.no_error", "", err, "the error stream of the {name} connection");
    }
    session.close().await;
    Ok(())
}

async fn closed_port(cx: &Cx) -> Result<(), CaseError> {
    let s = serving(cx, &["http", "8080"]).await?;
    let mut session = session(cx, &s.pod).await?;
    let conn = cx
        .step("a connection to port 9, where nothing listens", async {
            session.connect(9).await.map_err(|e| failure("streaming.port_forward.stream_pair", "opening the stream pair", e))
        })
        .await?;
    let message = cx
        .step("its error stream", async {
            conn.error_message(SESSION).await.map_err(|e| failure("streaming.port_forward.error_reported", "reading the error stream", e))
        })
        .await?;
    ensure!("streaming.port_forward.error_reported", !message.trim().is_empty(), "a connection to a closed port must be reported on its error stream; it ended empty");
    let good = cx
        .step("then a connection to 8080 on the same session", async {
            session.connect(PORT).await.map_err(|e| failure("streaming.port_forward.session_survives", "opening a pair after the failed one", e))
        })
        .await?;
    let (answer, _) = good
        .round_trip(GET, SESSION)
        .await
        .map_err(|e| failure("streaming.port_forward.session_survives", "an HTTP exchange after the failed connection", e))?;
    ensure!("streaming.port_forward.session_survives", answer.starts_with(b"HTTP/1."), "after a failed connection the session no longer forwards: {:?}", String::from_utf8_lossy(&answer));
    session.close().await;
    Ok(())
}

async fn validation(cx: &Cx) -> Result<(), CaseError> {
    cx.step("unknown pod sandbox", async {
        expect_refused(
            "streaming.port_forward.unknown_pod",
            tonic::Code::NotFound,
            cx.cri().port_forward(forward_req(&"0".repeat(64), &[i32::from(PORT)])).await,
            "PortForward to an unknown pod sandbox",
        )
    })
    .await
}

pub const CASES: &[CaseDef] = &[
    CaseDef {
        id: "streaming.port_forward.url",
        suite: Suite::Conformance,
        summary: "PortForward returns an http(s) URL that upgrades to portforward.k8s.io",
        reqs: &[PORT_FORWARD],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(60),
        run: case_fn!(url),
    },
    CaseDef {
        id: "streaming.port_forward.http_round_trip",
        suite: Suite::Conformance,
        summary: "an HTTP request forwarded to a server in the pod gets its whole answer",
        reqs: &[PORT_FORWARD, PAIRS],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(60),
        run: case_fn!(http_round_trip),
    },
    CaseDef {
        id: "streaming.port_forward.two_connections",
        suite: Suite::Conformance,
        summary: "two forwarded connections at once each carry their own 256 KiB both ways",
        reqs: &[PAIRS],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(60),
        run: case_fn!(two_connections),
    },
    CaseDef {
        id: "streaming.port_forward.closed_port",
        suite: Suite::Conformance,
        summary: "a port nothing listens on is reported on the error stream; the session still forwards",
        reqs: &[PAIRS],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(60),
        run: case_fn!(closed_port),
    },
    CaseDef {
        id: "streaming.port_forward.validation",
        suite: Suite::Conformance,
        summary: "PortForward to an unknown pod sandbox is refused with NotFound",
        reqs: &[PORT_FORWARD],
        tags: &[Tag::Conformance, Tag::Streaming, Tag::Network, Tag::Negative],
        needs: &[],
        timeout: Duration::from_secs(60),
        run: case_fn!(validation),
    },
];
