//! Each session role against a peer written by hand, to see the exact frames on the wire.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, duplex};
use tokio::time::timeout;

use super::{T, next, read_all};
use crate::spdy::frame::{Frame, FrameDecoder, FrameEncoder, FrameError};
use crate::spdy::{
    GoAwayStatus, Headers, Incoming, RstStatus, Session, SessionError, SessionOptions,
};

/// The far end of a pipe, speaking frames by hand.
struct Raw {
    io: DuplexStream,
    enc: FrameEncoder,
    dec: FrameDecoder,
    buf: BytesMut,
}

impl Raw {
    fn new(io: DuplexStream) -> Self {
        Raw {
            io,
            enc: FrameEncoder::new(),
            dec: FrameDecoder::default(),
            buf: BytesMut::new(),
        }
    }

    async fn send(&mut self, f: Frame) {
        let mut out = BytesMut::new();
        self.enc.encode(&f, &mut out).expect("encode");
        self.io.write_all(&out).await.expect("write all");
    }

    /// The next frame, or `None` at EOF.
    async fn recv(&mut self) -> Option<Frame> {
        timeout(T, async {
            loop {
                if let Some(f) = self.dec.decode(&mut self.buf).expect("decode") {
                    return Some(f);
                }
                if self.io.read_buf(&mut self.buf).await.unwrap_or(0) == 0 {
                    return None;
                }
            }
        })
        .await
        .expect("timed out")
    }

    async fn recv_until(&mut self, mut pred: impl FnMut(&Frame) -> bool) -> Frame {
        loop {
            let f = self.recv().await.expect("EOF before the expected frame");
            if pred(&f) {
                return f;
            }
        }
    }

    fn syn(id: u32, kind: &str) -> Frame {
        Frame::SynStream {
            stream_id: id,
            associated_to: 0,
            priority: 0,
            slot: 0,
            fin: false,
            unidirectional: false,
            headers: Headers::from([("streamtype", kind)]),
        }
    }
}

fn raw_server(opts: SessionOptions) -> (Session, Incoming, Raw) {
    let (a, b) = duplex(64 << 10);
    let (server, incoming) = Session::server(b, opts);
    (server, incoming, Raw::new(a))
}

#[tokio::test]
async fn server_reply_and_window_updates_on_the_wire() {
    let (_server, mut incoming, mut raw) = raw_server(SessionOptions::default());
    raw.send(Raw::syn(1, "stdin")).await;
    let s = next(&mut incoming).await;
    assert_eq!(s.id(), 1);
    let mut s = s.accept();
    let reply = raw.recv().await.expect("recv");
    let Frame::SynReply {
        stream_id: 1,
        fin: false,
        headers,
    } = reply
    else {
        panic!("{reply:?}")
    };
    assert_eq!(headers.get(":status"), Some("200"));
    assert_eq!(headers.get(":version"), Some("HTTP/1.1"));

    // Like spdy-transport: fill the 64 KiB initial window, then wait for credit.
    let reader = tokio::spawn(async move { read_all(&mut s).await.expect("read all").len() });
    let chunk = |fin| Frame::Data {
        stream_id: 1,
        fin,
        data: Bytes::from(vec![7u8; 8 << 10]),
    };
    for _ in 0..8 {
        raw.send(chunk(false)).await;
    }
    let (mut stream_credit, mut session_credit) = (0, 0);
    while stream_credit < 32 << 10 || session_credit < 64 << 10 {
        if let Frame::WindowUpdate { stream_id, delta } = raw
            .recv_until(|f| matches!(f, Frame::WindowUpdate { .. }))
            .await
        {
            match stream_id {
                0 => session_credit += delta,
                1 => stream_credit += delta,
                other => panic!("WINDOW_UPDATE for stream {other}"),
            }
        }
    }
    raw.send(chunk(false)).await;
    raw.send(chunk(true)).await;
    assert_eq!(reader.await.expect("task"), 80 << 10);
}

#[tokio::test]
async fn client_ids_are_odd_and_reply_timeout_resets() {
    let (a, b) = duplex(64 << 10);
    let opts = SessionOptions {
        reply_timeout: Duration::from_millis(200),
        ..SessionOptions::default()
    };
    let client = Session::client(a, opts);
    let mut raw = Raw::new(b);
    let opening = tokio::spawn({
        let client = client.clone();
        async move {
            client
                .open_stream(Headers::from([("streamtype", "error")]))
                .await
        }
    });
    let Some(Frame::SynStream {
        stream_id: 1,
        headers,
        ..
    }) = raw.recv().await
    else {
        panic!("expected SYN_STREAM 1")
    };
    assert_eq!(headers.get("streamtype"), Some("error"));
    let err = opening.await.expect("task").expect_err("open must fail");
    assert_eq!(err.to_string(), "no SYN_REPLY for stream 1 within 200ms");
    assert_eq!(
        raw.recv().await,
        Some(Frame::RstStream {
            stream_id: 1,
            status: RstStatus::Cancel
        })
    );
    // The next stream is 3 and a reply completes it.
    let opening = tokio::spawn({
        let client = client.clone();
        async move { client.open_stream(Headers::new()).await }
    });
    assert!(matches!(
        raw.recv().await,
        Some(Frame::SynStream { stream_id: 3, .. })
    ));
    raw.send(Frame::SynReply {
        stream_id: 3,
        fin: false,
        headers: Headers::new(),
    })
    .await;
    let s3 = opening.await.expect("task").expect("open stream");
    assert_eq!(s3.id(), 3);
    // A stream the server tries to open is refused.
    raw.send(Raw::syn(2, "push")).await;
    assert_eq!(
        raw.recv().await,
        Some(Frame::RstStream {
            stream_id: 2,
            status: RstStatus::RefusedStream
        })
    );
}

#[tokio::test]
async fn garbage_ends_the_session_with_a_clear_error() {
    let (server, mut incoming, mut raw) = raw_server(SessionOptions::default());
    raw.send(Raw::syn(1, "stdin")).await;
    let mut s = next(&mut incoming).await.accept();
    raw.io
        .write_all(&[0x80, 0x03, 0x00, 0x05, 0, 0, 0, 0])
        .await
        .expect("write all");
    let err = timeout(T, server.closed())
        .await
        .expect("timed out")
        .expect_err("unwrap must fail");
    assert_eq!(
        err.to_string(),
        "SPDY protocol error from the peer: control frame type 5 is not SPDY/3.1"
    );
    let read_err = read_all(&mut s).await.expect_err("read all must fail");
    assert!(
        read_err.to_string().contains("control frame type 5"),
        "{read_err}"
    );
    // The peer is told why before the connection closes.
    let f = raw.recv_until(|f| matches!(f, Frame::GoAway { .. })).await;
    assert_eq!(
        f,
        Frame::GoAway {
            last_good_stream_id: 1,
            status: GoAwayStatus::ProtocolError
        }
    );
    assert_eq!(raw.recv().await, None);

    // An HTTP request where frames should be: the length check trips first.
    let opts = SessionOptions {
        max_frame_len: 1 << 20,
        ..SessionOptions::default()
    };
    let (server, _incoming, mut raw) = raw_server(opts);
    raw.io
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write all");
    let err = timeout(T, server.closed())
        .await
        .expect("timed out")
        .expect_err("unwrap must fail");
    assert_eq!(
        err.to_string(),
        "SPDY protocol error from the peer: frame length 2115668 exceeds the limit of 1048576 bytes"
    );
}

#[tokio::test]
async fn oversize_length_fails_without_the_payload() {
    let opts = SessionOptions {
        max_frame_len: 1 << 20,
        ..SessionOptions::default()
    };
    let (server, _incoming, mut raw) = raw_server(opts);
    // Only the 8-byte header of a 16 MiB DATA frame; the session must not wait for the rest.
    raw.io
        .write_all(&[0, 0, 0, 1, 0, 0xff, 0xff, 0xff])
        .await
        .expect("write all");
    let err = timeout(T, server.closed())
        .await
        .expect("timed out")
        .expect_err("unwrap must fail");
    assert!(matches!(
        err,
        SessionError::Protocol(FrameError::TooLarge {
            len: 0xff_ffff,
            max: 0x10_0000
        })
    ));
}

#[tokio::test]
async fn connection_end_reaches_every_reader() {
    // Abrupt: no GOAWAY, a stream still open.
    let (server, mut incoming, mut raw) = raw_server(SessionOptions::default());
    raw.send(Raw::syn(1, "stdin")).await;
    let mut s = next(&mut incoming).await.accept();
    assert!(matches!(raw.recv().await, Some(Frame::SynReply { .. })));
    drop(raw);
    let err = read_all(&mut s).await.expect_err("read all must fail");
    assert_eq!(
        err.to_string(),
        "stream 1: SPDY session ended: connection closed by the peer with streams open and no GOAWAY"
    );
    assert_eq!(server.closed().await, Err(SessionError::ConnectionClosed));

    // Orderly: GOAWAY first, then the close reads as EOF.
    let (server, mut incoming, mut raw) = raw_server(SessionOptions::default());
    raw.send(Raw::syn(1, "stdin")).await;
    let mut s = next(&mut incoming).await.accept();
    raw.send(Frame::GoAway {
        last_good_stream_id: 0,
        status: GoAwayStatus::Ok,
    })
    .await;
    drop(raw);
    assert_eq!(read_all(&mut s).await.expect("read all"), b"");
    assert_eq!(
        timeout(T, server.closed()).await.expect("timed out"),
        Ok(())
    );
    assert!(
        timeout(T, incoming.recv())
            .await
            .expect("timed out")
            .is_none()
    );
}

#[tokio::test]
async fn idle_timeout_resets_and_closes() {
    let opts = SessionOptions {
        idle_timeout: Some(Duration::from_millis(200)),
        ..SessionOptions::default()
    };
    let (server, mut incoming, mut raw) = raw_server(opts);
    raw.send(Raw::syn(1, "stdin")).await;
    let s = next(&mut incoming).await.accept();
    assert!(matches!(raw.recv().await, Some(Frame::SynReply { .. })));
    assert_eq!(
        raw.recv().await,
        Some(Frame::RstStream {
            stream_id: 1,
            status: RstStatus::Cancel
        })
    );
    assert_eq!(
        raw.recv().await,
        Some(Frame::GoAway {
            last_good_stream_id: 1,
            status: GoAwayStatus::Ok
        })
    );
    assert_eq!(raw.recv().await, None);
    assert_eq!(
        server.closed().await,
        Err(SessionError::IdleTimeout(Duration::from_millis(200)))
    );
    drop(s);
}

#[tokio::test]
async fn dropping_every_handle_closes_the_connection() {
    let (a, b) = duplex(64 << 10);
    let client = Session::client(a, SessionOptions::default());
    let mut raw = Raw::new(b);
    drop(client);
    assert_eq!(
        raw.recv().await,
        Some(Frame::GoAway {
            last_good_stream_id: 0,
            status: GoAwayStatus::Ok
        })
    );
    assert_eq!(raw.recv().await, None);
}

#[tokio::test]
async fn settings_are_recorded_only() {
    let (server, _incoming, mut raw) = raw_server(SessionOptions::default());
    raw.send(Frame::Settings {
        clear: false,
        entries: vec![crate::spdy::Setting {
            flags: 1,
            id: crate::spdy::frame::SETTINGS_INITIAL_WINDOW_SIZE,
            value: 1 << 20,
        }],
    })
    .await;
    raw.send(Frame::WindowUpdate {
        stream_id: 0,
        delta: 1 << 20,
    })
    .await;
    raw.send(Frame::Ping { id: 1 }).await;
    assert_eq!(raw.recv().await, Some(Frame::Ping { id: 1 }));
    assert_eq!(server.peer_settings().len(), 1);
    assert_eq!(server.peer_settings()[0].value, 1 << 20);
}
#[tokio::test]
async fn raw_pings_are_echoed() {
    let (_server, _incoming, mut raw) = raw_server(SessionOptions::default());
    raw.send(Frame::Ping { id: 7 }).await;
    assert_eq!(raw.recv().await, Some(Frame::Ping { id: 7 }));
}

#[tokio::test]
async fn syn_after_goaway_or_going_back_is_refused() {
    // A SYN_STREAM after our GOAWAY is refused; one going back on ids is a protocol error.
    let (server, mut incoming, mut raw) = raw_server(SessionOptions::default());
    raw.send(Raw::syn(5, "error")).await;
    let _s5 = next(&mut incoming).await.accept();
    assert!(matches!(
        raw.recv().await,
        Some(Frame::SynReply { stream_id: 5, .. })
    ));
    raw.send(Raw::syn(3, "stdin")).await;
    assert_eq!(
        raw.recv_until(|f| matches!(f, Frame::RstStream { .. }))
            .await,
        Frame::RstStream {
            stream_id: 3,
            status: RstStatus::ProtocolError
        }
    );
    server.goaway();
    assert_eq!(
        raw.recv().await,
        Some(Frame::GoAway {
            last_good_stream_id: 5,
            status: GoAwayStatus::Ok
        })
    );
    raw.send(Raw::syn(7, "stdout")).await;
    assert_eq!(
        raw.recv().await,
        Some(Frame::RstStream {
            stream_id: 7,
            status: RstStatus::RefusedStream
        })
    );
}

#[tokio::test]
async fn server_end_of_exec_matches_the_kubernetes_sequence() {
    let (server, mut incoming, mut raw) = raw_server(SessionOptions::default());
    for (id, kind) in [(1, "error"), (3, "stdout"), (5, "stderr")] {
        raw.send(Raw::syn(id, kind)).await;
    }
    let mut err = next(&mut incoming).await.accept();
    let mut out = next(&mut incoming).await.accept();
    let mut stderr = next(&mut incoming).await.accept();
    out.send(Bytes::from_static(b"hello")).await.expect("send");
    out.close().expect("close");
    stderr.close().expect("close");
    err.send(Bytes::from_static(
        b"{\"metadata\":{},\"status\":\"Success\"}",
    ))
    .await
    .expect("send");
    server.close().await;
    let data = |stream_id, fin, data: &'static [u8]| Frame::Data {
        stream_id,
        fin,
        data: Bytes::from_static(data),
    };
    let mut seen = Vec::new();
    while let Some(f) = raw.recv().await {
        seen.push(f);
    }
    let replies: Vec<u32> = seen
        .iter()
        .filter_map(|f| match f {
            Frame::SynReply { stream_id, .. } => Some(*stream_id),
            _ => None,
        })
        .collect();
    assert_eq!(replies, [1, 3, 5]);
    let rest: Vec<Frame> = seen
        .into_iter()
        .filter(|f| !matches!(f, Frame::SynReply { .. }))
        .collect();
    assert_eq!(
        rest,
        vec![
            data(3, false, b"hello"),
            data(3, true, b""),
            data(5, true, b""),
            data(1, false, b"{\"metadata\":{},\"status\":\"Success\"}"),
            Frame::RstStream {
                stream_id: 1,
                status: RstStatus::Cancel
            },
            Frame::GoAway {
                last_good_stream_id: 5,
                status: GoAwayStatus::Ok
            },
        ]
    );
}

#[tokio::test]
async fn pipelined_streams_keep_data_sent_before_the_reply() {
    // spdy-transport does not wait for SYN_REPLY before writing.
    let (_server, mut incoming, mut raw) = raw_server(SessionOptions::default());
    raw.send(Raw::syn(1, "stdin")).await;
    raw.send(Frame::Data {
        stream_id: 1,
        fin: true,
        data: Bytes::from_static(b"early"),
    })
    .await;
    raw.send(Raw::syn(3, "stdout")).await;
    let stdin = next(&mut incoming).await;
    let stdout = next(&mut incoming).await;
    assert_eq!((stdin.id(), stdout.id()), (1, 3));
    assert_eq!(stdin.headers().get("streamtype"), Some("stdin"));
    let mut stdin = stdin.accept();
    assert_eq!(read_all(&mut stdin).await.expect("read all"), b"early");
}

#[tokio::test]
async fn client_pings_use_odd_ids() {
    let (a, b) = duplex(64 << 10);
    let opts = SessionOptions {
        ping_interval: Some(Duration::from_millis(50)),
        ..SessionOptions::default()
    };
    let client = Session::client(a, opts);
    let mut raw = Raw::new(b);
    let mut ids = Vec::new();
    while ids.len() < 3 {
        if let Frame::Ping { id } = raw.recv_until(|f| matches!(f, Frame::Ping { .. })).await {
            ids.push(id);
            raw.send(Frame::Ping { id }).await;
        }
    }
    assert!(ids.iter().all(|id| id % 2 == 1), "{ids:?}");
    assert!(ids.windows(2).all(|w| w[1] == w[0] + 2), "{ids:?}");
    drop(client);

    // An explicit ping returns once echoed.
    let (a, b) = duplex(64 << 10);
    let client = Session::client(a, SessionOptions::default());
    let mut raw = Raw::new(b);
    let pinging = tokio::spawn(async move { client.ping().await });
    assert_eq!(raw.recv().await, Some(Frame::Ping { id: 1 }));
    raw.send(Frame::Ping { id: 1 }).await;
    pinging.await.expect("task").expect("ping answered");
}
