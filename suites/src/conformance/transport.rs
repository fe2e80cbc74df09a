//! Area `transport`: the runtime as a gRPC-over-HTTP/2 server on a unix socket, checked with
//! frames written by hand (`kit::raw_h2`), so what real clients send reaches it unchanged: the
//! `:authority` forms kubelet, crictl and gRPC core send, a garbage preface, connections closed
//! mid-request or held idle (deadlines, the receive limit and compression: `transport_limits`).
//! A runtime built on a stack that mishandles any of these (tonic over h2
//! resets a socket-path authority) cannot serve those clients, whatever its RPCs do.

use std::time::{Duration, Instant};

use cricket_harness::{CaseDef, CaseError, Cx, Req, Suite, Tag, case_fn, cri, ensure};
use prost::Message;

use crate::kit;
use crate::kit::raw_h2::{Answer, RawConn, grpc_headers, socket_of};

pub(super) const T: &[Tag] = &[Tag::Conformance, Tag::Transport];

pub(super) const VERSION: &str = "/runtime.v1.RuntimeService/Version";
pub(super) const STATUS: &str = "/runtime.v1.RuntimeService/Status";
pub(super) const LIST_CONTAINERS: &str = "/runtime.v1.RuntimeService/ListContainers";
pub(super) const EXEC_SYNC: &str = "/runtime.v1.RuntimeService/ExecSync";
pub(super) const PULL_IMAGE: &str = "/runtime.v1.ImageService/PullImage";

/// How long any one answer may take here.
pub(super) const ANSWER: Duration = Duration::from_secs(10);

const AUTHORITY: Req = Req {
    rpc: "Version",
    rule: "RFC 9113 §8.3.1: the :authority pseudo-header carries the authority of the target URI; over a unix socket there is none, and real clients send what they have: grpc-go dialled with a bare socket path (older kubelets, crictl and critest) the path itself, gRPC core (Python, C++, Ruby) the percent-encoded path, others `localhost`, an empty value or nothing. A CRI server must answer all of them.",
};
const PREFACE: Req = Req {
    rpc: "Version",
    rule: "RFC 9113 §3.4: Clients and servers MUST treat an invalid connection preface as a connection error of type PROTOCOL_ERROR. (The connection ends; the server goes on serving the others.)",
};
const CLOSED: Req = Req {
    rpc: "Version",
    rule: "RFC 9113 §5.4.1 and §9.1: a connection can end at any time, also in the middle of a request; kubelet, crictl and every tool that exits mid-call do exactly that. The server must release what the connection held and go on serving.",
};
const IDLE: Req = Req {
    rpc: "Version",
    rule: "RFC 9113 §9.1: HTTP/2 connections are persistent; kubelet holds its connections for its whole life. Idle connections must not keep the server from answering others, new ones included.",
};

/// The runtime's socket, or a skip for an endpoint that is not one.
pub(super) fn socket(cx: &Cx) -> Result<String, CaseError> {
    socket_of(&cx.target().endpoint).ok_or_else(|| {
        CaseError::skip(format!(
            "the transport cases speak HTTP/2 on a unix socket; endpoint {} is not one",
            cx.target().endpoint
        ))
    })
}

pub(super) async fn connect(socket: &str) -> Result<RawConn, CaseError> {
    RawConn::connect(socket)
        .await
        .map_err(|e| CaseError::fail("transport.connect", e))
}

/// An answer must be HTTP 200 with grpc-status 0 and a message that decodes as `M`.
pub(super) fn ok_reply<M: Message + Default>(
    check: &'static str,
    what: &str,
    a: &Answer,
) -> Result<M, CaseError> {
    ensure!(
        check,
        a.http_status() == Some("200") && a.grpc_status() == Some(0) && a.reset.is_none(),
        "{what}: {}",
        a.describe()
    );
    let body = a.message().ok_or_else(|| {
        CaseError::fail(check, format!("{what}: no gRPC message in the answer: {}", a.describe()))
    })?;
    M::decode(body).map_err(|e| {
        CaseError::fail(check, format!("{what}: the reply does not decode: {e}"))
    })
}

pub(super) async fn call(
    conn: &mut RawConn,
    path: &str,
    authority: Option<&str>,
    extra: &[(&str, &str)],
    message: &[u8],
) -> Result<Answer, CaseError> {
    conn.unary(&grpc_headers(path, authority, extra), message, ANSWER)
        .await
        .map_err(|e| CaseError::fail("transport.answered", format!("{path}: {e}")))
}

/// Version, Status and ListContainers over one connection with this authority.
async fn with_authority(cx: &Cx, authority: Option<String>) -> Result<(), CaseError> {
    let socket = socket(cx)?;
    let mut conn = cx.step("connect", connect(&socket)).await?;
    let a = authority.as_deref();
    cx.step("Version", async {
        let r = call(&mut conn, VERSION, a, &[], &cri::VersionRequest::default().encode_to_vec()).await?;
        let v: cri::VersionResponse = ok_reply("transport.authority.answered", "Version", &r)?;
        ensure!(
            "transport.authority.answered",
            !v.runtime_name.is_empty(),
            "Version answered with no runtime_name"
        );
        Ok(())
    })
    .await?;
    cx.step("Status", async {
        let r = call(&mut conn, STATUS, a, &[], &cri::StatusRequest::default().encode_to_vec()).await?;
        let s: cri::StatusResponse = ok_reply("transport.authority.answered", "Status", &r)?;
        ensure!(
            "transport.authority.answered",
            s.status.is_some_and(|s| !s.conditions.is_empty()),
            "Status answered with no conditions"
        );
        Ok(())
    })
    .await?;
    cx.step("ListContainers", async {
        let req = cri::ListContainersRequest {
            filter: Some(cri::ContainerFilter {
                label_selector: cx.labels(),
                ..Default::default()
            }),
        };
        let r = call(&mut conn, LIST_CONTAINERS, a, &[], &req.encode_to_vec()).await?;
        ok_reply::<cri::ListContainersResponse>("transport.authority.answered", "ListContainers", &r)
            .map(drop)
    })
    .await
}

async fn authority_absent(cx: &Cx) -> Result<(), CaseError> {
    with_authority(cx, None).await
}

async fn authority_empty(cx: &Cx) -> Result<(), CaseError> {
    with_authority(cx, Some(String::new())).await
}

async fn authority_localhost(cx: &Cx) -> Result<(), CaseError> {
    with_authority(cx, Some("localhost".into())).await
}

async fn authority_socket_path(cx: &Cx) -> Result<(), CaseError> {
    let path = socket(cx)?;
    with_authority(cx, Some(path)).await
}

async fn authority_percent_encoded(cx: &Cx) -> Result<(), CaseError> {
    let path = socket(cx)?.replace('/', "%2F");
    with_authority(cx, Some(path)).await
}

async fn garbage_preface(cx: &Cx) -> Result<(), CaseError> {
    let socket = socket(cx)?;
    let mut conn = RawConn::open(&socket)
        .await
        .map_err(|e| CaseError::fail("transport.connect", e))?;
    cx.step("send an HTTP/1.1 request instead of the preface", async {
        conn.write(b"GET / HTTP/1.1\r\nHost: cricket\r\n\r\n")
            .await
            .map_err(|e| CaseError::fail("transport.connect", e))
    })
    .await?;
    cx.step("the connection ends", async {
        // Whatever the server says first (a GOAWAY, or nothing), it must close.
        let end = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                if conn.next().await.is_err() {
                    return;
                }
            }
        })
        .await;
        ensure!(
            "transport.preface.connection_closed",
            end.is_ok(),
            "the runtime kept a connection with a garbage preface open for 5s"
        );
        Ok(())
    })
    .await?;
    cx.step("other connections are served", async {
        let mut c = connect(&socket).await?;
        let r = call(&mut c, VERSION, Some("localhost"), &[], &[]).await?;
        ok_reply::<cri::VersionResponse>("transport.preface.still_serving", "Version on a new connection", &r)?;
        cx.cri().version(cri::VersionRequest::default()).await?;
        Ok(())
    })
    .await
}

/// Sockets the runtime process holds (when cricket started it and can see it).
fn socket_fds(pid: u32) -> Option<usize> {
    let dir = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
    Some(
        dir.flatten()
            .filter(|e| {
                std::fs::read_link(e.path())
                    .is_ok_and(|l| l.to_string_lossy().starts_with("socket:"))
            })
            .count(),
    )
}

async fn abrupt_close(cx: &Cx) -> Result<(), CaseError> {
    let socket = socket(cx)?;
    let pid = cx.options().target_pid;
    let before = pid.and_then(socket_fds);
    cx.step("200 connections dropped mid-request", async {
        for batch in 0..8 {
            let conns = (0..25).map(|_| async {
                let mut c = connect(&socket).await?;
                let stream = c
                    .send_headers(&grpc_headers(VERSION, Some("localhost"), &[]), false)
                    .await
                    .map_err(|e| CaseError::fail("transport.connect", e))?;
                // Three of the five bytes of a gRPC message header, then the connection ends.
                c.send_data(stream, &[0, 0, 0], false)
                    .await
                    .map_err(|e| CaseError::fail("transport.connect", e))?;
                drop(c);
                Ok::<_, CaseError>(())
            });
            for r in futures::future::join_all(conns).await {
                r.map_err(|e| match e {
                    CaseError::Fail(mut f) => {
                        f.message = format!("batch {batch}: {}", f.message);
                        CaseError::Fail(f)
                    }
                    other => other,
                })?;
            }
        }
        Ok(())
    })
    .await?;
    cx.step("still serving", async {
        cx.cri().version(cri::VersionRequest::default()).await?;
        let mut c = connect(&socket).await?;
        let r = call(&mut c, VERSION, Some("localhost"), &[], &[]).await?;
        ok_reply::<cri::VersionResponse>("transport.closed.still_serving", "Version", &r).map(drop)
    })
    .await?;
    if let (Some(pid), Some(before)) = (pid, before) {
        cx.step("descriptors released", async {
            // Other cases run alongside and open sockets of their own (registry pulls); the 200
            // dropped connections would show as 200.
            let slack = 24;
            let start = Instant::now();
            loop {
                let now = socket_fds(pid).unwrap_or(0);
                if now <= before + slack {
                    cx.note("runtime_sockets", format!("{before} before, {now} after"));
                    return Ok(());
                }
                if start.elapsed() > Duration::from_secs(10) {
                    return Err(CaseError::mismatch(
                        "transport.closed.fds_released",
                        "the runtime still holds the sockets of connections its clients closed",
                        format!("at most {} sockets", before + slack),
                        format!("{now} sockets (before: {before})"),
                    ));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await?;
    }
    Ok(())
}

async fn idle_held(cx: &Cx) -> Result<(), CaseError> {
    let socket = socket(cx)?;
    let mut idle = Vec::new();
    cx.step("open 50 idle connections", async {
        for _ in 0..50 {
            idle.push(connect(&socket).await?);
        }
        Ok(())
    })
    .await?;
    cx.step("calls on the connection cricket already had", async {
        let c = cx.cri().with_deadline(Duration::from_secs(5));
        for _ in 0..20 {
            c.version(cri::VersionRequest::default()).await?;
        }
        Ok(())
    })
    .await?;
    cx.step("a new connection is answered", async {
        let mut c = connect(&socket).await?;
        let stream = c
            .send_headers(&grpc_headers(VERSION, Some("localhost"), &[]), false)
            .await
            .map_err(|e| CaseError::fail("transport.connect", e))?;
        c.send_data(stream, &kit::raw_h2::grpc_frame(&[]), true)
            .await
            .map_err(|e| CaseError::fail("transport.connect", e))?;
        let r = c.answer(stream, Duration::from_secs(5)).await.map_err(|e| {
            CaseError::fail(
                "transport.idle.new_connection_answered",
                format!("with 50 idle connections open: {e}"),
            )
        })?;
        ok_reply::<cri::VersionResponse>("transport.idle.new_connection_answered", "Version", &r)
            .map(drop)
    })
    .await?;
    cx.step("the idle connections still work", async {
        for c in idle.iter_mut().take(5) {
            let r = call(c, VERSION, Some("localhost"), &[], &[]).await?;
            ok_reply::<cri::VersionResponse>("transport.idle.connection_usable", "Version", &r)?;
        }
        Ok(())
    })
    .await
}

pub const CASES: &[CaseDef] = &[
    CaseDef {
        id: "transport.authority.absent",
        suite: Suite::Conformance,
        summary: "Version, Status and ListContainers with no :authority at all are answered",
        reqs: &[AUTHORITY],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(30),
        run: case_fn!(authority_absent),
    },
    CaseDef {
        id: "transport.authority.empty",
        suite: Suite::Conformance,
        summary: "Version, Status and ListContainers with an empty :authority are answered",
        reqs: &[AUTHORITY],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(30),
        run: case_fn!(authority_empty),
    },
    CaseDef {
        id: "transport.authority.localhost",
        suite: Suite::Conformance,
        summary: "Version, Status and ListContainers with :authority localhost (grpc-go with unix://, newer kubelets) are answered",
        reqs: &[AUTHORITY],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(30),
        run: case_fn!(authority_localhost),
    },
    CaseDef {
        id: "transport.authority.socket_path",
        suite: Suite::Conformance,
        summary: "Version, Status and ListContainers with the socket path as :authority (older kubelets, crictl, grpc-java) are answered",
        reqs: &[AUTHORITY],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(30),
        run: case_fn!(authority_socket_path),
    },
    CaseDef {
        id: "transport.authority.percent_encoded_path",
        suite: Suite::Conformance,
        summary: "Version, Status and ListContainers with the percent-encoded socket path as :authority (gRPC core: Python, C++, Ruby) are answered",
        reqs: &[AUTHORITY],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(30),
        run: case_fn!(authority_percent_encoded),
    },
    CaseDef {
        id: "transport.preface.garbage",
        suite: Suite::Conformance,
        summary: "a connection that starts with garbage is closed and the runtime keeps serving others",
        reqs: &[PREFACE],
        tags: &[Tag::Conformance, Tag::Transport, Tag::Negative],
        needs: &[],
        timeout: Duration::from_secs(30),
        run: case_fn!(garbage_preface),
    },
    CaseDef {
        id: "transport.connections.closed_mid_request",
        suite: Suite::Conformance,
        summary: "200 connections closed in the middle of a request leave the runtime serving and (bundled) holding no more sockets",
        reqs: &[CLOSED],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(120),
        run: case_fn!(abrupt_close),
    },
    CaseDef {
        id: "transport.connections.idle_held",
        suite: Suite::Conformance,
        summary: "with 50 idle connections held open, calls on other connections, new ones included, are answered",
        reqs: &[IDLE],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(120),
        run: case_fn!(idle_held),
    },
];
