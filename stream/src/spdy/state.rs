//! The session-side record of one stream and the guard its handles share.
//!
//! The session reader feeds the record (data, FIN, RST, the reply); the handles in
//! `stream.rs` drain it. Data written before an RST from the peer stays readable, because
//! Kubernetes servers write the exit status on the error stream and then reset it.

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use tokio::sync::{Notify, oneshot};

use super::conn::{Shared, lock};
use super::frame::{Frame, RstStatus};
use super::headers::Headers;
use super::session::{SessionError, SessionGuard};

enum Remote {
    Open,
    Fin,
    Reset(RstStatus),
    /// The session ended first; `None` when it ended cleanly.
    Ended(Option<SessionError>),
}

#[derive(PartialEq, Eq)]
enum Local {
    Open,
    Fin,
    Reset,
}

struct Inner {
    recv: VecDeque<Bytes>,
    buffered: usize,
    remote: Remote,
    local: Local,
    reply: Option<oneshot::Sender<Result<Headers, SessionError>>>,
    read_waker: Option<Waker>,
    /// Bytes the application consumed that no WINDOW_UPDATE has credited yet.
    unacked: u32,
    detached: bool,
}

/// The session-side record of a stream, shared with its handles.
pub(crate) struct StreamState {
    pub(crate) id: u32,
    inner: Mutex<Inner>,
    drained: Notify,
}

impl StreamState {
    fn build(
        id: u32,
        remote_fin: bool,
        local: Local,
        reply: Option<oneshot::Sender<Result<Headers, SessionError>>>,
    ) -> Arc<Self> {
        Arc::new(StreamState {
            id,
            inner: Mutex::new(Inner {
                recv: VecDeque::new(),
                buffered: 0,
                remote: if remote_fin {
                    Remote::Fin
                } else {
                    Remote::Open
                },
                local,
                reply,
                read_waker: None,
                unacked: 0,
                detached: false,
            }),
            drained: Notify::new(),
        })
    }

    /// A stream the peer opened; a unidirectional one is closed on our side from the start.
    pub(crate) fn new(id: u32, remote_fin: bool, unidirectional: bool) -> Arc<Self> {
        let local = if unidirectional {
            Local::Fin
        } else {
            Local::Open
        };
        Self::build(id, remote_fin, local, None)
    }

    /// A stream we opened, waiting for its SYN_REPLY.
    pub(crate) fn opened(
        id: u32,
        reply: oneshot::Sender<Result<Headers, SessionError>>,
    ) -> Arc<Self> {
        Self::build(id, false, Local::Open, Some(reply))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        lock(&self.inner)
    }

    fn wake(inner: &mut Inner) {
        if let Some(w) = inner.read_waker.take() {
            w.wake();
        }
    }

    pub(crate) fn on_reply(&self, headers: Headers, fin: bool) -> bool {
        let mut inner = self.lock();
        let Some(reply) = inner.reply.take() else {
            return false;
        };
        let _ = reply.send(Ok(headers));
        if fin && matches!(inner.remote, Remote::Open) {
            inner.remote = Remote::Fin;
            Self::wake(&mut inner);
        }
        true
    }

    pub(crate) fn on_reset(&self, status: RstStatus) {
        let mut inner = self.lock();
        if let Some(reply) = inner.reply.take() {
            let _ = reply.send(Err(SessionError::Refused {
                id: self.id,
                status,
            }));
        }
        if matches!(inner.remote, Remote::Open | Remote::Fin) {
            inner.remote = Remote::Reset(status);
        }
        Self::wake(&mut inner);
        drop(inner);
        self.drained.notify_one();
    }

    /// Appends data from the peer; false when the peer had already finished the stream.
    pub(crate) fn on_data(&self, data: Bytes, fin: bool) -> bool {
        let mut inner = self.lock();
        if !matches!(inner.remote, Remote::Open) {
            return false;
        }
        if !data.is_empty() && !inner.detached && inner.local != Local::Reset {
            inner.buffered += data.len();
            inner.recv.push_back(data);
        }
        if fin {
            inner.remote = Remote::Fin;
        }
        Self::wake(&mut inner);
        true
    }

    /// Whether the reader should stop taking frames off the socket until this stream is
    /// read (only while more data for it may come).
    pub(crate) fn is_full(&self, limit: usize) -> bool {
        let inner = self.lock();
        inner.buffered >= limit && matches!(inner.remote, Remote::Open)
    }

    pub(crate) async fn wait_drained(&self, limit: usize) {
        while self.is_full(limit) {
            self.drained.notified().await;
        }
    }

    /// Neither side will use the stream again, so the session can stop routing frames to it.
    pub(crate) fn is_done(&self) -> bool {
        let inner = self.lock();
        match (&inner.remote, &inner.local) {
            (Remote::Reset(_) | Remote::Ended(_), _) | (_, Local::Reset) => true,
            (Remote::Fin, Local::Fin) => inner.reply.is_none(),
            _ => false,
        }
    }

    pub(crate) fn remote_open(&self) -> bool {
        matches!(self.lock().remote, Remote::Open)
    }

    /// For a closing session: whether this stream still needs an RST (spdystream sends none
    /// once this side has sent FIN).
    pub(crate) fn mark_reset_for_close(&self) -> bool {
        let mut inner = self.lock();
        if inner.local == Local::Open && matches!(inner.remote, Remote::Open | Remote::Fin) {
            inner.local = Local::Reset;
            return true;
        }
        false
    }

    pub(crate) fn session_ended(&self, err: Option<SessionError>) {
        let mut inner = self.lock();
        if let Some(reply) = inner.reply.take() {
            let _ = reply.send(Err(err.clone().unwrap_or(SessionError::Closed)));
        }
        if matches!(inner.remote, Remote::Open) {
            inner.remote = Remote::Ended(err);
        }
        Self::wake(&mut inner);
        drop(inner);
        self.drained.notify_one();
    }

    /// The peer will never process this stream (GOAWAY named a lower last id).
    pub(crate) fn fail_open(&self, err: SessionError) {
        let mut inner = self.lock();
        if let Some(reply) = inner.reply.take() {
            let _ = reply.send(Err(err.clone()));
        }
        if matches!(inner.remote, Remote::Open) {
            inner.remote = Remote::Ended(Some(err));
        }
        Self::wake(&mut inner);
    }

    /// Takes up to `max` buffered bytes, and says how much window to credit the peer once
    /// `threshold` consumed bytes have built up.
    pub(super) fn poll_chunk(
        &self,
        cx: &mut Context<'_>,
        max: usize,
        threshold: u32,
    ) -> (Poll<io::Result<Option<Bytes>>>, Option<u32>) {
        let mut inner = self.lock();
        if let Some(front) = inner.recv.front_mut() {
            let chunk = if front.len() <= max {
                inner.recv.pop_front().unwrap_or_default()
            } else {
                front.split_to(max)
            };
            inner.buffered -= chunk.len();
            let credit = if matches!(inner.remote, Remote::Open) {
                inner.unacked = inner.unacked.saturating_add(chunk.len() as u32);
                (inner.unacked >= threshold).then(|| std::mem::take(&mut inner.unacked))
            } else {
                None
            };
            drop(inner);
            self.drained.notify_one();
            return (Poll::Ready(Ok(Some(chunk))), credit);
        }
        if inner.local == Local::Reset {
            return (Poll::Ready(Ok(None)), None);
        }
        let poll = match &inner.remote {
            Remote::Open => {
                inner.read_waker = Some(cx.waker().clone());
                Poll::Pending
            }
            Remote::Fin | Remote::Reset(_) | Remote::Ended(None) => Poll::Ready(Ok(None)),
            Remote::Ended(Some(e)) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                ended_message(self.id, &Some(e.clone())),
            ))),
        };
        (poll, None)
    }

    pub(super) fn check_writable(&self) -> io::Result<()> {
        match writable_error(self.id, &self.lock()) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// Why a write cannot go out now, if it cannot.
fn writable_error(id: u32, inner: &Inner) -> Option<io::Error> {
    let (kind, msg) = match (&inner.local, &inner.remote) {
        (Local::Fin, _) => (
            io::ErrorKind::BrokenPipe,
            format!("write on closed stream {id}"),
        ),
        (Local::Reset, _) => (io::ErrorKind::BrokenPipe, format!("stream {id} was reset")),
        (_, Remote::Reset(s)) => (
            io::ErrorKind::ConnectionReset,
            format!("stream {id} was reset by the peer ({s})"),
        ),
        (_, Remote::Ended(e)) => (io::ErrorKind::NotConnected, ended_message(id, e)),
        _ => return None,
    };
    Some(io::Error::new(kind, msg))
}

fn ended_message(id: u32, e: &Option<SessionError>) -> String {
    match e {
        Some(e) => format!("stream {id}: SPDY session ended: {e}"),
        None => format!("stream {id}: SPDY session closed"),
    }
}

/// Keeps a stream registered while any of its handles lives; the last one to go resets a
/// stream this side never finished, so the peer is not left waiting.
pub(crate) struct Handle {
    pub(crate) state: Arc<StreamState>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) _session: Arc<SessionGuard>,
}

impl Handle {
    pub(super) fn reset(&self, status: RstStatus) {
        let send = {
            let mut inner = self.state.lock();
            inner.recv.clear();
            inner.buffered = 0;
            // As spdystream: nothing to send once this side has sent FIN.
            let send =
                inner.local == Local::Open && matches!(inner.remote, Remote::Open | Remote::Fin);
            inner.local = Local::Reset;
            StreamState::wake(&mut inner);
            send
        };
        self.state.drained.notify_one();
        if send {
            self.shared.send(
                Frame::RstStream {
                    stream_id: self.state.id,
                    status,
                },
                None,
            );
        }
        self.shared.forget_if_done(&self.state);
    }

    pub(super) fn close(&self) -> io::Result<()> {
        {
            let mut inner = self.state.lock();
            if inner.local == Local::Fin {
                return Ok(());
            }
            if let Some(e) = writable_error(self.state.id, &inner) {
                return Err(e);
            }
            inner.local = Local::Fin;
        }
        let frame = Frame::Data {
            stream_id: self.state.id,
            fin: true,
            data: Bytes::new(),
        };
        if !self.shared.send(frame, None) {
            return Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "SPDY session closed",
            ));
        }
        self.shared.forget_if_done(&self.state);
        Ok(())
    }

    pub(super) fn reset_by_peer(&self) -> Option<RstStatus> {
        match self.state.lock().remote {
            Remote::Reset(s) => Some(s),
            _ => None,
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        let send = {
            let mut inner = self.state.lock();
            inner.detached = true;
            inner.recv.clear();
            inner.buffered = 0;
            let send =
                inner.local == Local::Open && matches!(inner.remote, Remote::Open | Remote::Fin);
            if send {
                inner.local = Local::Reset;
            }
            send
        };
        self.state.drained.notify_one();
        if send {
            self.shared.send(
                Frame::RstStream {
                    stream_id: self.state.id,
                    status: RstStatus::Cancel,
                },
                None,
            );
        }
        self.shared.forget(self.state.id);
    }
}
