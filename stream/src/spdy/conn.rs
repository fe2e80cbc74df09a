//! The session's shared state and what it does with each frame the peer sends.
//!
//! Everything sent goes through one FIFO queue drained by the writer task (`tasks.rs`),
//! which owns the sending zlib stream: frames never interleave, header blocks are
//! compressed in wire order, and a SYN_REPLY always precedes the DATA written after
//! accepting. The reader never waits on the writer (its replies go on the same unbounded
//! queue), so two peers that both stop reading while writing cannot deadlock through us;
//! DATA is bounded separately by write permits.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot, watch};
use tracing::{debug, warn};

use super::frame::{Frame, GoAwayStatus, RstStatus, Setting};
use super::headers::Headers;
use super::session::{IncomingStream, Role, SessionError, SessionGuard, SessionOptions};
use super::state::{Handle, StreamState};
use super::tasks;

/// Replies the reader queued that the writer has not sent yet; past this the peer is sending
/// faster than it reads and the session is ended rather than buffering without bound.
const MAX_CONTROL_BACKLOG: usize = 10_000;
/// How long a local close waits for queued frames to reach the socket.
pub(crate) const CLOSE_FLUSH_TIMEOUT: Duration = Duration::from_secs(10);
/// After its last frame, how long a closing side waits for the peer to close first.
pub(crate) const CLOSE_GRACE: Duration = Duration::from_secs(1);

pub(crate) enum Outgoing {
    Frame {
        frame: Frame,
        permit: Option<OwnedSemaphorePermit>,
        control: bool,
    },
    Shutdown,
}

pub(crate) struct Shared {
    pub(crate) role: Role,
    pub(crate) opts: SessionOptions,
    tx: mpsc::UnboundedSender<Outgoing>,
    pub(crate) permits: Arc<Semaphore>,
    state: Mutex<State>,
    pub(super) control_backlog: AtomicUsize,
    pub(super) last_activity: Mutex<Instant>,
    pub(crate) ended: watch::Sender<bool>,
    pub(crate) writer_done: watch::Sender<bool>,
    /// The peer closed its side (EOF), or the reader gave up waiting for it.
    pub(crate) peer_done: watch::Sender<bool>,
    writer_abort: Mutex<Option<tokio::task::AbortHandle>>,
    /// Lets the reader hand out incoming streams that keep the session alive, without the
    /// session keeping itself alive.
    pub(crate) guard: OnceLock<Weak<SessionGuard>>,
}

pub(crate) struct State {
    pub(crate) streams: HashMap<u32, Arc<StreamState>>,
    pub(crate) next_stream_id: u32,
    pub(crate) next_ping_id: u32,
    /// The lowest id the peer may use for its next SYN_STREAM.
    expected_peer_id: u32,
    pub(crate) last_peer_id: u32,
    pub(crate) pings: HashMap<u32, oneshot::Sender<()>>,
    pub(crate) goaway_sent: bool,
    pub(crate) goaway_received: Option<(u32, GoAwayStatus)>,
    pub(crate) settings: Vec<Setting>,
    pub(crate) end: Option<Option<SessionError>>,
    pub(crate) incoming: Option<mpsc::UnboundedSender<IncomingStream>>,
    session_unacked: u32,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of our locks leaves plain data behind; keep going.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    pub(crate) fn new(
        role: Role,
        opts: SessionOptions,
        incoming: Option<mpsc::UnboundedSender<IncomingStream>>,
    ) -> (Arc<Shared>, mpsc::UnboundedReceiver<Outgoing>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let (own_first, peer_first) = match role {
            Role::Client => (1, 2),
            Role::Server => (2, 1),
        };
        let shared = Arc::new(Shared {
            role,
            permits: Arc::new(Semaphore::new(opts.write_queue_frames.max(1))),
            opts,
            tx,
            state: Mutex::new(State {
                streams: HashMap::new(),
                next_stream_id: own_first,
                next_ping_id: own_first,
                expected_peer_id: peer_first,
                last_peer_id: 0,
                pings: HashMap::new(),
                goaway_sent: false,
                goaway_received: None,
                settings: Vec::new(),
                end: None,
                incoming,
                session_unacked: 0,
            }),
            control_backlog: AtomicUsize::new(0),
            last_activity: Mutex::new(Instant::now()),
            ended: watch::channel(false).0,
            writer_done: watch::channel(false).0,
            peer_done: watch::channel(false).0,
            writer_abort: Mutex::new(None),
            guard: OnceLock::new(),
        });
        (shared, rx)
    }

    /// Starts the IO tasks; call once the guard is in place, so the first SYN_STREAM can
    /// already be handed out.
    pub(crate) fn run<IO>(self: &Arc<Self>, io: IO, rx: mpsc::UnboundedReceiver<Outgoing>)
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (rd, wr) = tokio::io::split(io);
        let writer = tokio::spawn(tasks::write_loop(self.clone(), wr, rx));
        *lock(&self.writer_abort) = Some(writer.abort_handle());
        tokio::spawn(tasks::read_loop(self.clone(), rd));
        if let Some(every) = self.opts.ping_interval {
            tokio::spawn(tasks::keepalive(Arc::downgrade(self), every));
        }
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// Queues a frame; false once the writer has gone.
    pub(crate) fn send(&self, frame: Frame, permit: Option<OwnedSemaphorePermit>) -> bool {
        self.tx
            .send(Outgoing::Frame {
                frame,
                permit,
                control: false,
            })
            .is_ok()
    }

    /// Queues a reply the reader owes the peer, counting it against the backlog limit.
    fn send_control(&self, frame: Frame) {
        let n = self.control_backlog.fetch_add(1, Ordering::Relaxed);
        if n >= MAX_CONTROL_BACKLOG {
            self.end(
                Some(SessionError::Backlog(MAX_CONTROL_BACKLOG)),
                None,
                false,
            );
            return;
        }
        let _ = self.tx.send(Outgoing::Frame {
            frame,
            permit: None,
            control: true,
        });
    }

    pub(crate) fn send_window_update(&self, stream_id: u32, delta: u32) {
        let _ = self.send(Frame::WindowUpdate { stream_id, delta }, None);
    }

    pub(super) fn touch(&self) {
        *lock(&self.last_activity) = Instant::now();
    }

    pub(crate) fn end_error(&self) -> Option<SessionError> {
        self.state().end.clone().flatten()
    }

    /// Ends the session once (later calls are no-ops): optionally resets streams this side
    /// has not finished and sends GOAWAY, then lets the writer flush and shut the IO down.
    pub(crate) fn end(&self, err: Option<SessionError>, goaway: Option<GoAwayStatus>, reset: bool) {
        let streams: Vec<Arc<StreamState>> = {
            let mut st = self.state();
            if st.end.is_some() {
                return;
            }
            st.end = Some(err.clone());
            st.incoming = None;
            st.pings.clear();
            let streams: Vec<_> = st.streams.drain().map(|(_, s)| s).collect();
            if reset {
                let mut ids: Vec<u32> = Vec::new();
                for s in &streams {
                    if s.mark_reset_for_close() {
                        ids.push(s.id);
                    }
                }
                ids.sort_unstable();
                for stream_id in ids {
                    self.send(
                        Frame::RstStream {
                            stream_id,
                            status: RstStatus::Cancel,
                        },
                        None,
                    );
                }
            }
            if let Some(status) = goaway
                && !st.goaway_sent
            {
                st.goaway_sent = true;
                let last_good_stream_id = st.last_peer_id;
                self.send(
                    Frame::GoAway {
                        last_good_stream_id,
                        status,
                    },
                    None,
                );
            }
            let _ = self.tx.send(Outgoing::Shutdown);
            streams
        };
        for s in streams {
            s.session_ended(err.clone());
        }
        self.permits.close();
        self.ended.send_replace(true);
    }

    /// Stops the writer if it cannot flush in time (a peer that stopped reading).
    pub(crate) async fn wait_writer(&self) {
        let mut done = self.writer_done.subscribe();
        let flushed = tokio::time::timeout(CLOSE_FLUSH_TIMEOUT, done.wait_for(|d| *d)).await;
        if flushed.is_err()
            && let Some(abort) = lock(&self.writer_abort).take()
        {
            abort.abort();
        }
    }

    /// Stops routing frames to a stream.
    pub(crate) fn forget(&self, id: u32) {
        self.state().streams.remove(&id);
    }

    /// Credits the session window as data arrives, so one stream's unread data cannot
    /// starve the others; per-stream windows still follow what the application reads.
    fn credit_session(&self, len: usize) {
        let delta = {
            let mut st = self.state();
            st.session_unacked = st.session_unacked.saturating_add(len as u32);
            if st.session_unacked < self.opts.window_update_threshold {
                return;
            }
            std::mem::take(&mut st.session_unacked)
        };
        self.send_control(Frame::WindowUpdate {
            stream_id: 0,
            delta,
        });
    }

    /// Acts on one frame; returns a stream whose buffer is full, for the reader to wait on.
    pub(super) fn dispatch(self: &Arc<Self>, frame: Frame) -> Option<Arc<StreamState>> {
        match frame {
            Frame::SynStream {
                stream_id,
                fin,
                unidirectional,
                headers,
                ..
            } => self.on_syn_stream(stream_id, fin, unidirectional, headers),
            Frame::SynReply {
                stream_id,
                fin,
                headers,
            } => {
                let s = self.state().streams.get(&stream_id).cloned();
                match s {
                    Some(s) => {
                        if !s.on_reply(headers, fin) {
                            debug!(stream_id, "duplicate SYN_REPLY ignored");
                        }
                        self.forget_if_done(&s);
                    }
                    None => debug!(stream_id, "SYN_REPLY for an unknown stream ignored"),
                }
            }
            Frame::RstStream { stream_id, status } => {
                let s = self.state().streams.remove(&stream_id);
                match s {
                    Some(s) => s.on_reset(status),
                    None => debug!(stream_id, %status, "RST_STREAM for an unknown stream"),
                }
            }
            Frame::Settings { clear, entries } => {
                let mut st = self.state();
                if clear {
                    st.settings.clear();
                }
                for e in entries {
                    st.settings.retain(|s| s.id != e.id);
                    st.settings.push(e);
                }
            }
            Frame::Ping { id } => {
                if id % 2 != self.role.parity() {
                    self.send_control(Frame::Ping { id });
                } else if let Some(waiter) = self.state().pings.remove(&id) {
                    let _ = waiter.send(());
                } else {
                    debug!(id, "PING answer nobody waits for");
                }
            }
            Frame::GoAway {
                last_good_stream_id,
                status,
            } => {
                let pending: Vec<_> = {
                    let mut st = self.state();
                    st.goaway_received = Some((last_good_stream_id, status));
                    st.incoming = None;
                    st.streams
                        .values()
                        .filter(|s| s.id % 2 == self.role.parity() && s.id > last_good_stream_id)
                        .cloned()
                        .collect()
                };
                for s in pending {
                    s.fail_open(SessionError::GoAway {
                        last_good_stream_id,
                        status,
                    });
                }
            }
            Frame::Headers { stream_id, fin, .. } => {
                let s = self.state().streams.get(&stream_id).cloned();
                if let Some(s) = s
                    && fin
                {
                    s.on_data(bytes::Bytes::new(), true);
                    self.forget_if_done(&s);
                }
            }
            // Sends never wait on the peer's window (Go peers never open it), so nothing to do.
            Frame::WindowUpdate { .. } => {}
            Frame::Data {
                stream_id,
                fin,
                data,
            } => {
                if !data.is_empty() {
                    self.credit_session(data.len());
                }
                let s = self.state().streams.get(&stream_id).cloned();
                let Some(s) = s else {
                    debug!(
                        stream_id,
                        len = data.len(),
                        "DATA for an unknown stream dropped"
                    );
                    return None;
                };
                if !s.on_data(data, fin) {
                    self.send_control(Frame::RstStream {
                        stream_id,
                        status: RstStatus::StreamAlreadyClosed,
                    });
                }
                self.forget_if_done(&s);
                if s.is_full(self.opts.max_stream_buffer) {
                    return Some(s);
                }
            }
        }
        None
    }

    fn on_syn_stream(self: &Arc<Self>, id: u32, fin: bool, unidirectional: bool, headers: Headers) {
        // Upgraded outside the state lock: if it turns out to be the last guard, dropping it
        // ends the session, which takes that lock.
        let guard = self.guard.get().and_then(Weak::upgrade);
        let verdict = {
            let mut st = self.state();
            if id < st.expected_peer_id || st.streams.contains_key(&id) {
                Err(RstStatus::ProtocolError)
            } else {
                st.expected_peer_id = id.saturating_add(2);
                let peer_streams = st
                    .streams
                    .keys()
                    .filter(|k| *k % 2 != self.role.parity())
                    .count();
                match (&st.incoming, &guard) {
                    (Some(incoming), Some(_))
                        if !st.goaway_sent && peer_streams < self.opts.max_incoming_streams =>
                    {
                        let incoming = incoming.clone();
                        st.last_peer_id = id;
                        let state = StreamState::new(id, fin, unidirectional);
                        st.streams.insert(id, state.clone());
                        Ok((state, incoming))
                    }
                    _ => Err(RstStatus::RefusedStream),
                }
            }
        };
        match (verdict, guard) {
            (Ok((state, incoming)), Some(guard)) => {
                let handle = Handle {
                    state,
                    shared: self.clone(),
                    _session: guard,
                };
                // A handler that went away rejects by dropping it (RST CANCEL).
                let _ = incoming.send(IncomingStream::new(handle, headers, unidirectional));
            }
            (Err(status), _) => {
                if status == RstStatus::ProtocolError {
                    warn!(id, "SYN_STREAM reuses or goes back on a stream id");
                }
                self.send_control(Frame::RstStream {
                    stream_id: id,
                    status,
                });
            }
            (Ok((state, _)), None) => {
                // Every handle is gone and the session is closing.
                self.forget(state.id);
                self.send_control(Frame::RstStream {
                    stream_id: id,
                    status: RstStatus::RefusedStream,
                });
            }
        }
    }

    pub(crate) fn forget_if_done(&self, s: &StreamState) {
        if s.is_done() {
            self.forget(s.id);
        }
    }
}
