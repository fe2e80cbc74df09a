//! The SPDY side of the streaming server: the streams a client opens become the session's
//! stdio (remotecommand) or its port-forward pairs. Streams are accepted as they come (a Go
//! client opens the next only after the previous reply), counted against what the request
//! needs, and given up on after 30 s, as the Kubernetes server does.

use std::sync::Arc;
use std::time::Instant;

use cricket_proto::v1 as cri;
use cricket_stream::portforward::{self as pf, Added, PairTable};
use cricket_stream::remotecommand::{HEADER_STREAM_TYPE, StreamType};
use cricket_stream::spdy::{Incoming, RstStatus, Session, Stream, StreamReader, StreamWriter};
use tokio::io::AsyncWriteExt;

use super::portforward;
use super::remotecommand::{BoxRead, BoxWrite, Streams};
use crate::engine::Engine;

/// What a remotecommand session over SPDY opened, as `Streams`, plus the halves nobody uses
/// (kept so they are not reset before the session ends).
pub struct Opened {
    pub streams: Streams,
    pub unused: Vec<Box<dyn Send>>,
}

/// Waits for the streams a remotecommand request needs: error, and stdin/stdout/stderr as
/// asked, and resize with a tty from v3 on.
pub async fn remotecommand_streams(
    session: &Session,
    incoming: &mut Incoming,
    version: u8,
    want: (bool, bool, bool, bool),
) -> Result<Opened, String> {
    let (stdin, stdout, stderr, tty) = want;
    let resize = tty && version >= 3;
    let expected =
        1 + usize::from(stdin) + usize::from(stdout) + usize::from(stderr) + usize::from(resize);
    let mut got: Vec<(StreamType, Stream)> = Vec::new();
    let mut unused: Vec<Box<dyn Send>> = Vec::new();
    let deadline = tokio::time::Instant::now() + pf::STREAM_CREATION_TIMEOUT;
    while got.len() < expected {
        let next = tokio::time::timeout_at(deadline, incoming.recv()).await;
        let Ok(Some(s)) = next else {
            return Err("timed out waiting for client to create streams".into());
        };
        let kind = s
            .headers()
            .get(HEADER_STREAM_TYPE)
            .and_then(StreamType::parse);
        let stream = s.accept();
        match kind {
            Some(k) if !got.iter().any(|(t, _)| *t == k) => got.push((k, stream)),
            // Unknown or repeated: replied to, not counted (the reference server logs it).
            _ => unused.push(Box::new(stream)),
        }
    }
    let mut take = |k: StreamType| {
        got.iter()
            .position(|(t, _)| *t == k)
            .map(|i| got.remove(i).1.into_split())
    };
    let mut reader = |k: StreamType, unused: &mut Vec<Box<dyn Send>>| -> Option<BoxRead> {
        let (r, w) = take(k)?;
        unused.push(Box::new(w));
        Some(Box::pin(r) as BoxRead)
    };
    let stdin_s = reader(StreamType::Stdin, &mut unused);
    let resize_s = reader(StreamType::Resize, &mut unused);
    let mut writer = |k: StreamType, unused: &mut Vec<Box<dyn Send>>| -> Option<BoxWrite> {
        let (r, w) = take(k)?;
        unused.push(Box::new(r));
        Some(Box::pin(w) as BoxWrite)
    };
    let stdout_s = writer(StreamType::Stdout, &mut unused);
    let stderr_s = writer(StreamType::Stderr, &mut unused);
    let error = writer(StreamType::Error, &mut unused).ok_or("no error stream")?;
    let s2 = session.clone();
    Ok(Opened {
        streams: Streams {
            stdin: stdin_s.filter(|_| stdin),
            stdout: stdout_s.filter(|_| stdout),
            stderr: stderr_s.filter(|_| stderr),
            resize: resize_s.filter(|_| resize),
            error,
            gone: Box::pin(async move {
                let _ = s2.closed().await;
            }),
        },
        unused,
    })
}

/// Serves port-forward pairs on a SPDY session until the client closes it: each pair (an
/// error and a data stream with one request id) is one connection to its port in the pod.
pub async fn port_forward(
    engine: Arc<Engine>,
    req: cri::PortForwardRequest,
    mut incoming: Incoming,
) {
    let mut table: PairTable<(StreamReader, StreamWriter)> = PairTable::new();
    loop {
        let timer = table.next_deadline(pf::STREAM_CREATION_TIMEOUT);
        let next = async {
            match timer {
                Some(at) => tokio::time::timeout_at(at.into(), incoming.recv())
                    .await
                    .ok(),
                None => Some(incoming.recv().await),
            }
        };
        match next.await {
            None => {
                for p in table.take_expired(Instant::now(), pf::STREAM_CREATION_TIMEOUT) {
                    if let Some((_, mut w)) = p.error {
                        let m = pf::timeout_message("spdy", &p.request_id);
                        let _ = w.write_all(m.as_bytes()).await;
                        let _ = w.shutdown().await;
                    }
                }
            }
            Some(None) => return,
            Some(Some(s)) => {
                let parsed = pf::parse_headers(s.headers());
                let id = s.id();
                let Ok(h) = parsed else {
                    s.reject();
                    continue;
                };
                let stream = s.accept().into_split();
                match table.add(&h.pairing_id(id), h.stream_type, stream, Instant::now()) {
                    Added::Waiting { .. } => {}
                    Added::Duplicate { message, stream } => {
                        drop(stream);
                        if let Some((_, w)) = table.error_stream_mut(&h.pairing_id(id)) {
                            let _ = w.write_all(message.as_bytes()).await;
                        }
                    }
                    Added::Complete { error, data, .. } => {
                        let engine = engine.clone();
                        let pod = req.pod_sandbox_id.clone();
                        let port = h.port;
                        tokio::spawn(async move {
                            forward_pair(engine, pod, port, error, data).await;
                        });
                    }
                }
            }
        }
    }
}

async fn forward_pair(
    engine: Arc<Engine>,
    pod: String,
    port: u16,
    (_, mut error): (StreamReader, StreamWriter),
    (data_r, data_w): (StreamReader, StreamWriter),
) {
    match portforward::forward(&engine, &pod, port, data_r, data_w).await {
        Ok(()) => {
            let _ = error.shutdown().await;
        }
        Err(e) => {
            let m = pf::forward_error_message(port, &pod, "", &e);
            if !engine
                .faults
                .has(crate::fault::Fault::PortForwardSilentError)
            {
                let _ = error.write_all(m.as_bytes()).await;
            }
            let _ = error.shutdown().await;
            error.reset(RstStatus::Cancel);
        }
    }
}

/// Which protocol versions a remotecommand name stands for (`v4.channel.k8s.io` → 4).
pub fn version_of(protocol: &str) -> u8 {
    cricket_stream::remotecommand::protocol_version(protocol).unwrap_or(1)
}
