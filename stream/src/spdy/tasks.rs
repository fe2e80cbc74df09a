//! The session's IO tasks: the reader (frames in, idle timer), the writer (frames out,
//! batched) and the optional keepalive pinger.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::conn::{CLOSE_GRACE, Outgoing, Shared, lock};
use super::frame::{Frame, FrameDecoder, FrameEncoder, GoAwayStatus};
use super::session::{Role, SessionError};

/// How long a failed write waits for the reader to report the connection's end itself.
const WRITE_ERROR_GRACE: Duration = Duration::from_secs(1);

/// How long the read half drains a closed session for the peer's last frames.
const LINGER: Duration = Duration::from_secs(2);

pub(super) async fn read_loop<R: AsyncRead + Unpin>(shared: Arc<Shared>, mut rd: R) {
    let peer_closed = read_frames(&shared, &mut rd).await;
    if !peer_closed {
        // A lingering close: the peer may still be sending (WINDOW_UPDATEs for what it just
        // got, its own GOAWAY). A socket closed with those unread answers them with a TCP
        // RST, and a peer that has not yet read our last frames (the exit status) loses them.
        // So the read half drains until the peer closes too, for a while.
        let _ = tokio::time::timeout(LINGER, async {
            let mut sink = [0u8; 8 << 10];
            while let Ok(n) = rd.read(&mut sink).await {
                if n == 0 {
                    break;
                }
            }
        })
        .await;
    }
    shared.peer_done.send_replace(true);
    // However the session ended, a writer stuck on a peer that stopped reading must not
    // keep the connection open.
    shared.wait_writer().await;
}

/// Reads until the session ends; true when that was the peer closing the connection.
async fn read_frames<R: AsyncRead + Unpin>(shared: &Arc<Shared>, mut rd: R) -> bool {
    let mut buf = BytesMut::with_capacity(64 << 10);
    let mut dec = FrameDecoder::new(shared.opts.max_frame_len, shared.opts.max_header_block);
    let mut ended = shared.ended.subscribe();
    let result: Result<(), SessionError> = 'read: loop {
        loop {
            match dec.decode(&mut buf) {
                Ok(Some(frame)) => {
                    shared.touch();
                    if let Some(s) = shared.dispatch(frame) {
                        let limit = shared.opts.max_stream_buffer;
                        tokio::select! {
                            _ = s.wait_drained(limit) => {}
                            _ = ended.wait_for(|e| *e) => return false,
                        }
                    }
                }
                Ok(None) => break,
                Err(e) => break 'read Err(SessionError::Protocol(e)),
            }
        }
        if buf.capacity() - buf.len() < 8 << 10 {
            buf.reserve(64 << 10);
        }
        let idle = idle_deadline(shared);
        tokio::select! {
            r = rd.read_buf(&mut buf) => match r {
                Ok(0) => break Ok(()),
                Ok(_) => {}
                Err(e) => break Err(SessionError::Io(e.to_string())),
            },
            _ = sleep_until(idle) => {
                if let Some(timeout) = shared.opts.idle_timeout
                    && lock(&shared.last_activity).elapsed() >= timeout
                {
                    debug!(?timeout, "SPDY session idle; closing");
                    shared.end(Some(SessionError::IdleTimeout(timeout)), Some(GoAwayStatus::Ok), true);
                    return false;
                }
            }
            _ = ended.wait_for(|e| *e) => return false,
        }
    };
    // EOF or a broken connection: the peer is gone. After its protocol error it may still be
    // sending.
    let peer_closed = !matches!(result, Err(SessionError::Protocol(_)));
    match result {
        Ok(()) => {
            let graceful = {
                let st = shared.state();
                st.goaway_received.is_some()
                    || st.goaway_sent
                    || st.streams.values().all(|s| !s.remote_open())
            };
            let err = (!graceful).then_some(SessionError::ConnectionClosed);
            shared.end(err, None, false);
        }
        Err(SessionError::Protocol(e)) => {
            warn!(error = %e, "SPDY protocol error from the peer");
            shared.end(
                Some(SessionError::Protocol(e)),
                Some(GoAwayStatus::ProtocolError),
                false,
            );
        }
        Err(e) => shared.end(Some(e), None, false),
    }
    peer_closed
}

fn idle_deadline(shared: &Shared) -> Option<Instant> {
    let timeout = shared.opts.idle_timeout?;
    Some(*lock(&shared.last_activity) + timeout)
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

pub(super) async fn write_loop<W: AsyncWrite + Unpin>(
    shared: Arc<Shared>,
    mut wr: W,
    mut rx: mpsc::UnboundedReceiver<Outgoing>,
) {
    let mut enc = FrameEncoder::new();
    let mut out = BytesMut::with_capacity(64 << 10);
    let mut permits = Vec::new();
    let mut shutdown = false;
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                Outgoing::Frame {
                    frame,
                    permit,
                    control,
                } => {
                    if control {
                        shared.control_backlog.fetch_sub(1, Ordering::Relaxed);
                    }
                    if let Err(e) = enc.encode(&frame, &mut out) {
                        // The sending zlib stream may now be out of step with the peer's.
                        shared.end(Some(SessionError::Encode(e)), None, false);
                        shutdown = true;
                        break;
                    }
                    permits.extend(permit);
                }
                Outgoing::Shutdown => {
                    shutdown = true;
                    break;
                }
            }
            if out.len() < 256 << 10 {
                next = rx.try_recv().ok();
            }
        }
        if !out.is_empty() {
            let written = async {
                wr.write_all(&out).await?;
                wr.flush().await
            }
            .await;
            if let Err(e) = written {
                // The reader usually meets the same failure as EOF, maybe just after a GOAWAY
                // that makes it a clean end; let it decide first.
                drop(rx);
                shared.writer_done.send_replace(true);
                tokio::time::sleep(WRITE_ERROR_GRACE).await;
                shared.end(Some(SessionError::Io(e.to_string())), None, false);
                return;
            }
            shared.touch();
            out.clear();
            permits.clear();
        }
        if shutdown {
            break;
        }
    }
    if shared.role == Role::Server {
        // Clients close first (client-go closes the connection once it has the status). A
        // server's FIN right after its last frames races clients that process frames
        // asynchronously and drop what is unprocessed when the socket ends (spdy-transport
        // does), so the server gives the client a moment to go first.
        let mut peer = shared.peer_done.subscribe();
        let _ = tokio::time::timeout(CLOSE_GRACE, peer.wait_for(|d| *d)).await;
    }
    let _ = wr.shutdown().await;
    shared.writer_done.send_replace(true);
}

pub(super) async fn keepalive(shared: std::sync::Weak<Shared>, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let id = {
            let mut st = shared.state();
            if st.end.is_some() {
                return;
            }
            let id = st.next_ping_id;
            st.next_ping_id = id.wrapping_add(2) & 0x7fff_ffff;
            id
        };
        if id != 0 {
            shared.send(Frame::Ping { id }, None);
        }
    }
}
