//! Area `transport`: the runtime as a gRPC-over-HTTP/2 server on a unix socket, checked with
//! frames written by hand (`kit::raw_h2`), so what real clients send reaches it unchanged: the
//! `:authority` forms kubelet, crictl and gRPC core send, a garbage preface, connections closed
//! mid-request or held idle, deadlines only the server can enforce, the receive limit and a
//! compressed request. A runtime built on a stack that mishandles any of these (tonic over h2
//! resets a socket-path authority) cannot serve those clients, whatever its RPCs do.

use std::time::{Duration, Instant};

use cricket_harness::{CaseDef, CaseError, Cx, Req, Suite, Tag, case_fn, cri, ensure, ensure_eq};
use prost::Message;

use crate::kit;
use crate::kit::raw_h2::{Answer, RawConn, grpc_headers, socket_of};

const T: &[Tag] = &[Tag::Conformance, Tag::Transport];

const VERSION: &str = "/runtime.v1.RuntimeService/Version";
const STATUS: &str = "/runtime.v1.RuntimeService/Status";
const LIST_CONTAINERS: &str = "/runtime.v1.RuntimeService/ListContainers";
const EXEC_SYNC: &str = "/runtime.v1.RuntimeService/ExecSync";
const PULL_IMAGE: &str = "/runtime.v1.ImageService/PullImage";

/// How long any one answer may take here.
const ANSWER: Duration = Duration::from_secs(10);

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
const DEADLINE_EXEC: Req = Req {
    rpc: "ExecSync",
    rule: "gRPC over HTTP/2: grpc-timeout is the client's deadline for the call; when it passes the call ends with DEADLINE_EXCEEDED (kubelet's probes carry their timeout this way and act on that code).",
};
const DEADLINE_PULL: Req = Req {
    rpc: "PullImage",
    rule: "gRPC over HTTP/2: grpc-timeout is the client's deadline for the call; when it passes the call ends with DEADLINE_EXCEEDED (kubelet bounds image pulls this way).",
};
const LIMIT: Req = Req {
    rpc: "Version",
    rule: "gRPC: a message larger than the receiver's limit is refused with RESOURCE_EXHAUSTED (grpc-go, which containerd and CRI-O use, does; kubelet sends and accepts up to 16 MiB, the limit both the bundled runtime and containerd's default max_recv_message_size set).",
};
const GZIP: Req = Req {
    rpc: "Version",
    rule: "gRPC over HTTP/2: a request may be compressed (grpc-encoding); a server that does not support the encoding answers UNIMPLEMENTED with a message naming it, never a broken stream.",
};

/// The runtime's socket, or a skip for an endpoint that is not one.
fn socket(cx: &Cx) -> Result<String, CaseError> {
    socket_of(&cx.target().endpoint).ok_or_else(|| {
        CaseError::skip(format!(
            "the transport cases speak HTTP/2 on a unix socket; endpoint {} is not one",
            cx.target().endpoint
        ))
    })
}

async fn connect(socket: &str) -> Result<RawConn, CaseError> {
    RawConn::connect(socket)
        .await
        .map_err(|e| CaseError::fail("transport.connect", e))
}

/// An answer must be HTTP 200 with grpc-status 0 and a message that decodes as `M`.
fn ok_reply<M: Message + Default>(
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

async fn call(
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

/// A call sent with a 1 s grpc-timeout whose work takes longer: only the runtime can answer
/// DEADLINE_EXCEEDED in time, since this client waits 10 s.
async fn server_deadline(
    cx: &Cx,
    path: &str,
    message: &[u8],
    status_check: &'static str,
    prompt_check: &'static str,
) -> Result<(), CaseError> {
    let socket = socket(cx)?;
    let mut conn = connect(&socket).await?;
    let started = Instant::now();
    let r = cx
        .step(
            "call with grpc-timeout 1S",
            call(&mut conn, path, Some("localhost"), &[("grpc-timeout", "1S")], message),
        )
        .await?;
    let took = started.elapsed();
    cx.note("answered_after_ms", took.as_millis().to_string());
    ensure_eq!(
        status_check,
        Some(tonic::Code::DeadlineExceeded as i32),
        r.grpc_status(),
        "grpc-status of a call past its grpc-timeout ({})",
        r.describe()
    );
    ensure!(
        prompt_check,
        took < Duration::from_secs(5),
        "DEADLINE_EXCEEDED came after {took:?}, not when the 1 s deadline passed"
    );
    Ok(())
}

async fn deadline_exec_sync(cx: &Cx) -> Result<(), CaseError> {
    let (image, _) = cx.step("pull probe", kit::pull(cx, "probe")).await?;
    let (_, _, id, _) =
        kit::pod_with_container(cx, &image, &["/bin/probe", "sleep", "inf"]).await?;
    let req = cri::ExecSyncRequest {
        container_id: id,
        cmd: kit::s(&["/bin/probe", "sleep", "8"]),
        timeout: 0,
    };
    server_deadline(
        cx,
        EXEC_SYNC,
        &req.encode_to_vec(),
        "transport.deadline.exec_sync_status",
        "transport.deadline.exec_sync_prompt",
    )
    .await
}

async fn deadline_pull_image(cx: &Cx) -> Result<(), CaseError> {
    let probe = cx.image("probe")?;
    // The fixture registry answers `<host>/delay-<ms>/<name>` like `<host>/<name>`, late.
    let Some((host, name)) = probe.split_once('/') else {
        return Err(CaseError::harness(
            "harness.fixture",
            format!("fixture reference {probe} has no registry host"),
        ));
    };
    let slow = format!("{host}/delay-6000/{name}");
    let req = cri::PullImageRequest {
        image: Some(cri::ImageSpec {
            image: slow,
            ..Default::default()
        }),
        ..Default::default()
    };
    server_deadline(
        cx,
        PULL_IMAGE,
        &req.encode_to_vec(),
        "transport.deadline.pull_image_status",
        "transport.deadline.pull_image_prompt",
    )
    .await
}

/// A VersionRequest of `size` bytes: the real message plus an unknown field (number 15, which
/// VersionRequest does not have) that every protobuf decoder skips.
fn padded_version(size: usize) -> Vec<u8> {
    let mut m = cri::VersionRequest {
        version: "0.1.0".into(),
    }
    .encode_to_vec();
    let pad = size.saturating_sub(m.len() + 6);
    m.push(15 << 3 | 2);
    prost::encoding::encode_varint(pad as u64, &mut m);
    m.resize(m.len() + pad, b'x');
    m
}

async fn receive_limit(cx: &Cx) -> Result<(), CaseError> {
    const LIMIT_BYTES: usize = 16 << 20;
    let socket = socket(cx)?;
    cx.step("16 MiB - 64 KiB is accepted", async {
        let mut conn = connect(&socket).await?;
        let r = call(&mut conn, VERSION, Some("localhost"), &[], &padded_version(LIMIT_BYTES - (64 << 10))).await?;
        ok_reply::<cri::VersionResponse>("transport.limits.under_limit_accepted", "Version", &r)
            .map(drop)
    })
    .await?;
    cx.step("16 MiB + 1 KiB is RESOURCE_EXHAUSTED", async {
        let mut conn = connect(&socket).await?;
        let r = call(&mut conn, VERSION, Some("localhost"), &[], &padded_version(LIMIT_BYTES + 1024)).await?;
        ensure_eq!(
            "transport.limits.over_limit_resource_exhausted",
            Some(tonic::Code::ResourceExhausted as i32),
            r.grpc_status(),
            "grpc-status for a message over the 16 MiB limit ({})",
            r.describe()
        );
        ensure!(
            "transport.limits.over_limit_resource_exhausted",
            !r.grpc_message().trim().is_empty(),
            "RESOURCE_EXHAUSTED without a message"
        );
        Ok(())
    })
    .await?;
    cx.cri().version(cri::VersionRequest::default()).await?;
    Ok(())
}

async fn gzip_request(cx: &Cx) -> Result<(), CaseError> {
    use std::io::Write;
    let socket = socket(cx)?;
    let plain = cri::VersionRequest {
        version: "0.1.0".into(),
    }
    .encode_to_vec();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let compressed = gz
        .write_all(&plain)
        .and_then(|()| gz.finish())
        .map_err(|e| CaseError::harness("harness.gzip", e.to_string()))?;
    let mut frame = vec![1u8];
    frame.extend_from_slice(&(compressed.len() as u32).to_be_bytes());
    frame.extend_from_slice(&compressed);
    let mut conn = connect(&socket).await?;
    let headers = grpc_headers(
        VERSION,
        Some("localhost"),
        &[("grpc-encoding", "gzip"), ("grpc-accept-encoding", "identity")],
    );
    let r = cx
        .step("Version, gzip-compressed", async {
            let stream = conn
                .send_headers(&headers, false)
                .await
                .map_err(|e| CaseError::fail("transport.connect", e))?;
            conn.send_data(stream, &frame, true)
                .await
                .map_err(|e| CaseError::fail("transport.connect", e))?;
            conn.answer(stream, ANSWER)
                .await
                .map_err(|e| CaseError::fail("transport.answered", e))
        })
        .await?;
    match r.grpc_status() {
        Some(0) => {
            ok_reply::<cri::VersionResponse>("transport.encoding.gzip_answered", "Version (gzip)", &r)
                .map(drop)
        }
        Some(12) => {
            ensure!(
                "transport.encoding.gzip_answered",
                !r.grpc_message().trim().is_empty(),
                "UNIMPLEMENTED for gzip without a message naming the encoding"
            );
            cx.note("gzip", "refused with UNIMPLEMENTED");
            Ok(())
        }
        _ => Err(CaseError::mismatch(
            "transport.encoding.gzip_answered",
            "a gzip-compressed request is neither answered nor refused with UNIMPLEMENTED",
            "grpc-status 0 with a reply, or 12 with a message",
            r.describe(),
        )),
    }
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
    CaseDef {
        id: "transport.deadline.exec_sync",
        suite: Suite::Conformance,
        summary: "ExecSync of an 8 s sleep with grpc-timeout 1S ends with DEADLINE_EXCEEDED from the runtime within 5 s",
        reqs: &[DEADLINE_EXEC],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(90),
        run: case_fn!(deadline_exec_sync),
    },
    CaseDef {
        id: "transport.deadline.pull_image",
        suite: Suite::Conformance,
        summary: "PullImage from a registry answering after 6 s, with grpc-timeout 1S, ends with DEADLINE_EXCEEDED from the runtime within 5 s",
        reqs: &[DEADLINE_PULL],
        tags: &[Tag::Conformance, Tag::Transport, Tag::Image],
        needs: &[],
        timeout: Duration::from_secs(60),
        run: case_fn!(deadline_pull_image),
    },
    CaseDef {
        id: "transport.limits.receive_limit",
        suite: Suite::Conformance,
        summary: "a request just under 16 MiB is answered, one just over is refused with RESOURCE_EXHAUSTED",
        reqs: &[LIMIT],
        tags: &[Tag::Conformance, Tag::Transport, Tag::Negative],
        needs: &[],
        timeout: Duration::from_secs(60),
        run: case_fn!(receive_limit),
    },
    CaseDef {
        id: "transport.encoding.gzip_request",
        suite: Suite::Conformance,
        summary: "a gzip-compressed request is answered, or refused with UNIMPLEMENTED and a message",
        reqs: &[GZIP],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(30),
        run: case_fn!(gzip_request),
    },
];
