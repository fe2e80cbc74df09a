//! Area `transport`, continued: what only the server side of the connection can get right:
//! deadlines a slow call must honour itself (grpc-timeout on ExecSync and PullImage), the
//! receive limit, and a compressed request it may not support. Same hand-written frames as
//! `transport`.

use std::time::{Duration, Instant};

use cricket_harness::{CaseDef, CaseError, Cx, Req, Suite, Tag, case_fn, cri, ensure, ensure_eq};
use prost::Message;

use super::transport::{ANSWER, EXEC_SYNC, PULL_IMAGE, T, VERSION, call, connect, ok_reply, socket};
use crate::kit;
use crate::kit::raw_h2::grpc_headers;

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
