//! The public face of a SPDY/3.1 session, for both the streaming server (the runtime) and
//! the streaming client (the suite).
//!
//! In the Kubernetes protocols only the client opens streams; the server answers each
//! SYN_STREAM at once, because client-go waits for every SYN_REPLY before opening the next
//! stream. The session lives while any [`Session`], [`Incoming`] or stream handle does, or
//! until [`Session::close`], the peer, an idle timeout or a protocol error ends it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot};

use super::conn::Shared;
use super::frame::{
    DEFAULT_MAX_FRAME_LEN, EncodeError, Frame, FrameError, GoAwayStatus, RstStatus, Setting,
};
use super::headers::{DEFAULT_MAX_HEADER_BLOCK, Headers};
use super::state::{Handle, StreamState};
use super::stream::Stream;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Opens streams with odd ids and pings with odd ids.
    Client,
    /// Receives streams; its own ids (streams, pings) are even.
    Server,
}

impl Role {
    /// The remainder mod 2 of ids this side picks.
    pub(crate) fn parity(self) -> u32 {
        match self {
            Role::Client => 1,
            Role::Server => 0,
        }
    }
}

#[derive(Debug, Clone)]
pub struct SessionOptions {
    /// Frames claiming a longer payload end the session before any of it is buffered.
    pub max_frame_len: u32,
    /// Cap on one decompressed header block.
    pub max_header_block: usize,
    /// No frame read or written for this long: reset all streams, GOAWAY, close.
    /// Kubernetes servers use 4 h.
    pub idle_timeout: Option<Duration>,
    /// How long `open_stream` waits for SYN_REPLY and `ping` for its answer (30 s in
    /// apimachinery).
    pub reply_timeout: Duration,
    /// DATA frames are cut at this size.
    pub data_chunk: usize,
    /// DATA frames queued but not yet written, across all streams, before writes wait.
    pub write_queue_frames: usize,
    /// Unread bytes one stream may hold before the session stops reading the socket (the
    /// only backpressure against Go peers, which ignore flow-control windows).
    pub max_stream_buffer: usize,
    /// Consumed bytes that trigger a WINDOW_UPDATE (half the initial 64 KiB window).
    pub window_update_threshold: u32,
    /// Streams the peer may have open at once; more are refused (REFUSED_STREAM).
    pub max_incoming_streams: usize,
    /// Send our own PING this often (client-go: every 5 s). Answers are not awaited.
    pub ping_interval: Option<Duration>,
}

impl Default for SessionOptions {
    fn default() -> Self {
        Self {
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
            max_header_block: DEFAULT_MAX_HEADER_BLOCK,
            idle_timeout: None,
            reply_timeout: Duration::from_secs(30),
            data_chunk: 16 << 10,
            write_queue_frames: 64,
            max_stream_buffer: 1 << 20,
            window_update_threshold: 32 << 10,
            max_incoming_streams: 1000,
            ping_interval: None,
        }
    }
}

/// Why a session ended or an operation on it failed. The protocol variants carry the
/// decoder's description of the frame or header at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error("SPDY protocol error from the peer: {0}")]
    Protocol(#[from] FrameError),
    #[error("cannot encode a frame: {0}")]
    Encode(EncodeError),
    #[error("connection error: {0}")]
    Io(String),
    #[error("connection closed by the peer with streams open and no GOAWAY")]
    ConnectionClosed,
    #[error("no frame read or written for {0:?}")]
    IdleTimeout(Duration),
    #[error("session closed")]
    Closed,
    #[error("peer sent GOAWAY ({status}, last good stream {last_good_stream_id})")]
    GoAway {
        last_good_stream_id: u32,
        status: GoAwayStatus,
    },
    #[error("stream {id} was reset by the peer before SYN_REPLY: {status}")]
    Refused { id: u32, status: RstStatus },
    #[error("no SYN_REPLY for stream {id} within {timeout:?}")]
    ReplyTimeout { id: u32, timeout: Duration },
    #[error("no answer to PING {id} within {timeout:?}")]
    PingTimeout { id: u32, timeout: Duration },
    #[error("stream ids exhausted")]
    IdsExhausted,
    #[error("peer sent more than {0} frames needing replies without reading ours")]
    Backlog(usize),
}

/// Ends the session cleanly when the last user-held handle goes away.
pub(crate) struct SessionGuard {
    shared: Arc<Shared>,
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        self.shared.end(None, Some(GoAwayStatus::Ok), true);
    }
}

/// A handle on a running session; clones share it.
#[derive(Clone)]
pub struct Session {
    shared: Arc<Shared>,
    guard: Arc<SessionGuard>,
}

impl Session {
    /// Starts a client session: streams are opened with [`Session::open_stream`]; streams
    /// the peer tries to open are refused. Both constructors spawn tasks, so they must run
    /// inside a Tokio runtime.
    pub fn client<IO>(io: IO, opts: SessionOptions) -> Session
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        Self::start(io, Role::Client, opts, None)
    }

    /// Starts a server session; every SYN_STREAM arrives on the returned [`Incoming`].
    pub fn server<IO>(io: IO, opts: SessionOptions) -> (Session, Incoming)
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (tx, rx) = mpsc::unbounded_channel();
        let session = Self::start(io, Role::Server, opts, Some(tx));
        let incoming = Incoming {
            rx,
            _guard: session.guard.clone(),
        };
        (session, incoming)
    }

    fn start<IO>(
        io: IO,
        role: Role,
        opts: SessionOptions,
        incoming: Option<mpsc::UnboundedSender<IncomingStream>>,
    ) -> Session
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (shared, rx) = Shared::new(role, opts, incoming);
        let guard = Arc::new(SessionGuard {
            shared: shared.clone(),
        });
        let _ = shared.guard.set(Arc::downgrade(&guard));
        shared.run(io, rx);
        Session { shared, guard }
    }

    pub fn role(&self) -> Role {
        self.shared.role
    }

    /// Sends SYN_STREAM (ids 1, 3, 5… for a client) and waits for SYN_REPLY.
    pub async fn open_stream(&self, headers: Headers) -> Result<Stream, SessionError> {
        let (tx, rx) = oneshot::channel();
        let state = {
            let mut st = self.shared.state();
            if let Some(end) = &st.end {
                return Err(end.clone().unwrap_or(SessionError::Closed));
            }
            if let Some((last_good_stream_id, status)) = st.goaway_received {
                return Err(SessionError::GoAway {
                    last_good_stream_id,
                    status,
                });
            }
            let id = st.next_stream_id;
            if id > 0x7fff_ffff {
                return Err(SessionError::IdsExhausted);
            }
            st.next_stream_id = id + 2;
            let state = StreamState::opened(id, tx);
            st.streams.insert(id, state.clone());
            // Still under the lock, so SYN_STREAMs reach the wire in id order.
            self.shared.send(
                Frame::SynStream {
                    stream_id: id,
                    associated_to: 0,
                    priority: 0,
                    slot: 0,
                    fin: false,
                    unidirectional: false,
                    headers,
                },
                None,
            );
            state
        };
        let id = state.id;
        // Dropped on failure, which resets the stream if the peer might still answer.
        let handle = Handle {
            state,
            shared: self.shared.clone(),
            _session: self.guard.clone(),
        };
        let timeout = self.shared.opts.reply_timeout;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(Ok(reply_headers))) => Ok(Stream::new(handle, reply_headers)),
            Ok(Ok(Err(e))) => Err(e),
            Ok(Err(_)) => Err(self.shared.end_error().unwrap_or(SessionError::Closed)),
            Err(_) => Err(SessionError::ReplyTimeout { id, timeout }),
        }
    }

    /// Sends our own PING and waits for the peer to echo it; returns the round trip.
    pub async fn ping(&self) -> Result<Duration, SessionError> {
        let (tx, rx) = oneshot::channel();
        let id = {
            let mut st = self.shared.state();
            if let Some(end) = &st.end {
                return Err(end.clone().unwrap_or(SessionError::Closed));
            }
            let id = st.next_ping_id;
            st.next_ping_id = id.wrapping_add(2) & 0x7fff_ffff;
            if st.next_ping_id == 0 {
                st.next_ping_id = 2;
            }
            st.pings.insert(id, tx);
            self.shared.send(Frame::Ping { id }, None);
            id
        };
        let start = Instant::now();
        let timeout = self.shared.opts.reply_timeout;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(())) => Ok(start.elapsed()),
            Ok(Err(_)) => Err(self.shared.end_error().unwrap_or(SessionError::Closed)),
            Err(_) => {
                self.shared.state().pings.remove(&id);
                Err(SessionError::PingTimeout { id, timeout })
            }
        }
    }

    /// Sends GOAWAY(last stream id the peer opened, OK) once; later SYN_STREAMs are refused
    /// and [`Incoming::recv`] returns `None` after the streams already received.
    pub fn goaway(&self) {
        let mut st = self.shared.state();
        if st.goaway_sent || st.end.is_some() {
            return;
        }
        st.goaway_sent = true;
        st.incoming = None;
        let last_good_stream_id = st.last_peer_id;
        self.shared.send(
            Frame::GoAway {
                last_good_stream_id,
                status: GoAwayStatus::Ok,
            },
            None,
        );
    }

    /// Resets every stream this side has not finished, sends GOAWAY, flushes what was
    /// queued before (such as an exit status) and shuts the connection down.
    pub async fn close(&self) {
        self.shared.end(None, Some(GoAwayStatus::Ok), true);
        self.shared.wait_writer().await;
    }

    pub fn is_closed(&self) -> bool {
        *self.shared.ended.borrow()
    }

    /// Waits for the session to end: `Ok` for a clean end (local close, or the peer closing
    /// after GOAWAY or with no stream open), otherwise what went wrong.
    pub async fn closed(&self) -> Result<(), SessionError> {
        let mut ended = self.shared.ended.subscribe();
        let _ = ended.wait_for(|e| *e).await;
        match self.shared.end_error() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// The peer's SETTINGS, recorded but not acted on.
    pub fn peer_settings(&self) -> Vec<Setting> {
        self.shared.state().settings.clone()
    }

    pub fn peer_goaway(&self) -> Option<(u32, GoAwayStatus)> {
        self.shared.state().goaway_received
    }

    /// The highest stream id the peer opened (what our GOAWAY names).
    pub fn last_peer_stream_id(&self) -> u32 {
        self.shared.state().last_peer_id
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("role", &self.shared.role)
            .field("closed", &self.is_closed())
            .finish_non_exhaustive()
    }
}

/// Streams the peer opens, in the order their SYN_STREAMs arrived.
pub struct Incoming {
    rx: mpsc::UnboundedReceiver<IncomingStream>,
    _guard: Arc<SessionGuard>,
}

impl Incoming {
    /// `None` once the session ended or either side sent GOAWAY.
    pub async fn recv(&mut self) -> Option<IncomingStream> {
        self.rx.recv().await
    }
}

impl std::fmt::Debug for Incoming {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Incoming").finish_non_exhaustive()
    }
}

/// A SYN_STREAM waiting for the handler's verdict. Dropping it rejects the stream.
pub struct IncomingStream {
    handle: Handle,
    headers: Headers,
    unidirectional: bool,
}

impl IncomingStream {
    pub(crate) fn new(handle: Handle, headers: Headers, unidirectional: bool) -> Self {
        Self {
            handle,
            headers,
            unidirectional,
        }
    }

    pub fn id(&self) -> u32 {
        self.handle.state.id
    }

    /// The SYN_STREAM's headers; lookups ignore case.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// Replies with `:status: 200` and `:version: HTTP/1.1`: Go clients ignore reply
    /// headers, but spdy-transport resets a stream whose reply lacks `:status`.
    pub fn accept(self) -> Stream {
        let headers = Headers::new()
            .with(":status", "200")
            .with(":version", "HTTP/1.1");
        self.accept_with(headers)
    }

    /// Replies with the given headers (empty ones are what Go servers send).
    pub fn accept_with(self, reply: Headers) -> Stream {
        if !self.unidirectional {
            self.handle.shared.send(
                Frame::SynReply {
                    stream_id: self.handle.state.id,
                    fin: false,
                    headers: reply,
                },
                None,
            );
        }
        Stream::new(self.handle, self.headers)
    }

    /// RST_STREAM CANCEL without a reply, as Go servers reject streams.
    pub fn reject(self) {}
}

impl std::fmt::Debug for IncomingStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IncomingStream")
            .field("id", &self.id())
            .field("headers", &self.headers)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
