//! Sessions driven over in-memory pipes: our client against our server. `wire` drives each
//! side against a hand-written peer that reads and writes raw frames.

use std::time::Duration;

use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt, duplex};
use tokio::time::timeout;

use super::*;

#[path = "session_wire_tests.rs"]
mod wire;
use crate::spdy::{GoAwayStatus, RstStatus};

const T: Duration = Duration::from_secs(20);

fn pair(opts: SessionOptions) -> (Session, Session, Incoming) {
    let (a, b) = duplex(64 << 10);
    let client = Session::client(a, opts.clone());
    let (server, incoming) = Session::server(b, opts);
    (client, server, incoming)
}

async fn next(incoming: &mut Incoming) -> IncomingStream {
    timeout(T, incoming.recv())
        .await
        .expect("timed out")
        .expect("no error")
}

/// Opens a stream while the server side accepts it.
async fn open(client: &Session, incoming: &mut Incoming, kind: &str) -> (Stream, Stream) {
    let headers = Headers::from([("streamType", kind)]);
    let accept = async {
        let s = next(incoming).await;
        assert_eq!(s.headers().get("STREAMTYPE"), Some(kind));
        s.accept()
    };
    let (c, s) = tokio::join!(client.open_stream(headers), accept);
    (c.expect("open stream"), s)
}

async fn read_all(mut r: impl tokio::io::AsyncRead + Unpin) -> std::io::Result<Vec<u8>> {
    let mut v = Vec::new();
    timeout(T, r.read_to_end(&mut v))
        .await
        .expect("timed out")?;
    Ok(v)
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_like_exchange() {
    let (client, server, mut incoming) = pair(SessionOptions::default());
    let (mut c_err, mut s_err) = open(&client, &mut incoming, "error").await;
    let (mut c_in, s_in) = open(&client, &mut incoming, "stdin").await;
    let (c_out, mut s_out) = open(&client, &mut incoming, "stdout").await;
    assert_eq!((c_err.id(), c_in.id(), c_out.id()), (1, 3, 5));
    assert_eq!(c_err.headers().get(":status"), Some("200"));
    assert_eq!(server.last_peer_stream_id(), 5);

    // The "process": copies stdin to stdout until stdin's EOF.
    let server_task = tokio::spawn(async move {
        let (mut r, _w) = s_in.into_split();
        tokio::io::copy(&mut r, &mut s_out).await.expect("copy");
        s_out.close().expect("close");
        s_err
            .send(Bytes::from_static(b"{\"status\":\"Success\"}"))
            .await
            .expect("send");
        server.close().await;
    });
    c_in.write_all(b"hello ").await.expect("write all");
    c_in.send(Bytes::from_static(b"world")).await.expect("send");
    c_in.shutdown().await.expect("shutdown");
    assert_eq!(read_all(c_out).await.expect("read all"), b"hello world");
    let mut status = Vec::new();
    while let Some(chunk) = c_err.recv().await.expect("recv") {
        status.extend_from_slice(&chunk);
    }
    assert_eq!(status, b"{\"status\":\"Success\"}");
    // The server reset the error stream it never closed, after writing the status.
    assert_eq!(c_err.reset_by_peer(), Some(RstStatus::Cancel));
    server_task.await.expect("task");
    timeout(T, client.closed())
        .await
        .expect("timed out")
        .expect("no error");
    assert_eq!(client.peer_goaway(), Some((5, GoAwayStatus::Ok)));
    assert!(client.open_stream(Headers::new()).await.is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn five_mib_each_way_at_once() {
    let (client, _server, mut incoming) = pair(SessionOptions::default());
    let (c, s) = open(&client, &mut incoming, "data").await;
    let payload: Vec<u8> = (0..5u32 << 20).map(|i| (i * 31 % 251) as u8).collect();
    let want = Sha256::digest(&payload);

    let (mut sr, mut sw) = s.into_split();
    let p2 = payload.clone();
    let server_send = tokio::spawn(async move {
        sw.send(p2).await.expect("send");
        sw.close().expect("close");
    });
    let server_recv = tokio::spawn(async move { read_all(&mut sr).await.expect("read all") });
    let (cr, mut cw) = c.into_split();
    let p3 = payload.clone();
    let client_send = tokio::spawn(async move {
        for chunk in p3.chunks(100_000) {
            cw.write_all(chunk).await.expect("write all");
        }
        cw.shutdown().await.expect("shutdown");
    });
    let got = read_all(cr).await.expect("read all");
    assert_eq!(Sha256::digest(&got), want);
    let got = server_recv.await.expect("task");
    assert_eq!(Sha256::digest(&got), want);
    server_send.await.expect("task");
    client_send.await.expect("no error");
}

#[tokio::test]
async fn half_close_keeps_the_other_direction() {
    let (client, _server, mut incoming) = pair(SessionOptions::default());
    let (mut c, mut s) = open(&client, &mut incoming, "stdin").await;
    c.close().expect("close");
    c.close().expect("close");
    let err = c
        .send(Bytes::from_static(b"x"))
        .await
        .expect_err("send must fail");
    assert_eq!(err.to_string(), "write on closed stream 1");
    // The server sees EOF but can still answer.
    assert_eq!(
        timeout(T, s.recv())
            .await
            .expect("timed out")
            .expect("no error"),
        None
    );
    s.send(Bytes::from_static(b"after fin"))
        .await
        .expect("send");
    s.close().expect("close");
    assert_eq!(read_all(&mut c).await.expect("read all"), b"after fin");
}

#[tokio::test]
async fn reset_and_reject() {
    let (client, _server, mut incoming) = pair(SessionOptions::default());
    let (mut c, s) = open(&client, &mut incoming, "stdout").await;
    s.reset(RstStatus::Cancel);
    assert_eq!(read_all(&mut c).await.expect("read all"), b"");
    assert_eq!(c.reset_by_peer(), Some(RstStatus::Cancel));
    let err = c
        .send(Bytes::from_static(b"x"))
        .await
        .expect_err("send must fail");
    assert_eq!(err.to_string(), "stream 1 was reset by the peer (CANCEL)");

    let headers = Headers::from([("streamtype", "bogus")]);
    let reject = async { next(&mut incoming).await.reject() };
    let (opened, ()) = tokio::join!(client.open_stream(headers), reject);
    let err = opened.expect_err("open must fail");
    assert_eq!(
        err,
        SessionError::Refused {
            id: 3,
            status: RstStatus::Cancel
        }
    );
    assert_eq!(
        err.to_string(),
        "stream 3 was reset by the peer before SYN_REPLY: CANCEL"
    );
    // Dropping an undecided stream rejects it too.
    let dropped = async { drop(next(&mut incoming).await) };
    let (opened, ()) = tokio::join!(client.open_stream(Headers::new()), dropped);
    assert!(matches!(opened, Err(SessionError::Refused { id: 5, .. })));
}

#[tokio::test]
async fn pings_are_echoed_both_ways() {
    let (client, server, _incoming) = pair(SessionOptions::default());
    timeout(T, client.ping())
        .await
        .expect("timed out")
        .expect("no error");
    timeout(T, server.ping())
        .await
        .expect("timed out")
        .expect("no error");
    timeout(T, client.ping())
        .await
        .expect("timed out")
        .expect("no error");
}

#[tokio::test]
async fn goaway_stops_new_streams() {
    let (client, server, mut incoming) = pair(SessionOptions::default());
    let (_c, _s) = open(&client, &mut incoming, "error").await;
    server.goaway();
    assert!(
        timeout(T, incoming.recv())
            .await
            .expect("timed out")
            .is_none()
    );
    for _ in 0..100 {
        if client.peer_goaway().is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(client.peer_goaway(), Some((1, GoAwayStatus::Ok)));
    let err = client
        .open_stream(Headers::new())
        .await
        .expect_err("open must fail");
    assert_eq!(err.to_string(), "peer sent GOAWAY (OK, last good stream 1)");
}

#[tokio::test]
async fn a_full_stream_buffer_holds_the_socket_until_read() {
    let opts = SessionOptions {
        max_stream_buffer: 64 << 10,
        ..SessionOptions::default()
    };
    let (client, _server, mut incoming) = pair(opts);
    let (mut c, mut s) = open(&client, &mut incoming, "stdin").await;
    let payload = Bytes::from(vec![1u8; 2 << 20]);
    let writer = tokio::spawn(async move {
        c.send(payload).await.expect("send");
        c.close().expect("close");
        c
    });
    // Nothing reads for a while: the writer cannot finish, and memory stays bounded.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!writer.is_finished());
    assert_eq!(read_all(&mut s).await.expect("read all").len(), 2 << 20);
    writer.await.expect("task");
}
