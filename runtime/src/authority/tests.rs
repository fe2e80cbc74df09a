//! The adapter against header blocks as real clients encode them.
use super::*;
use tokio::io::AsyncReadExt;

/// Encodes headers the way gRPC core does: incremental indexing and Huffman where the
/// encoder likes, so the adapter's decoder has real state to track.
fn client_block(enc: &mut loona_hpack::Encoder<'_>, authority: &str) -> Vec<u8> {
    let h: Vec<(&[u8], &[u8])> = vec![
        (b":method", b"POST"),
        (b":scheme", b"http"),
        (b":path", b"/runtime.v1.RuntimeService/Version"),
        (b":authority", authority.as_bytes()),
        (b"content-type", b"application/grpc"),
        (b"te", b"trailers"),
    ];
    enc.encode(h)
}

fn headers_frame(stream: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    frame_header(&mut f, payload.len(), HEADERS, flags, stream);
    f.extend_from_slice(payload);
    f
}

async fn through(input: Vec<u8>) -> Vec<u8> {
    let mut fix = AuthorityFix::new(&input[..]);
    let mut out = Vec::new();
    fix.read_to_end(&mut out).await.expect("reads");
    out
}

/// Splits the adapter's output back into (type, flags, stream, payload) frames.
fn frames(bytes: &[u8]) -> Vec<(u8, u8, u32, Vec<u8>)> {
    let mut v = Vec::new();
    let mut rest = &bytes[PREFACE.len()..];
    while rest.len() >= FRAME_HEADER {
        let len = usize::from(rest[0]) << 16 | usize::from(rest[1]) << 8 | usize::from(rest[2]);
        let stream = u32::from_be_bytes([rest[5], rest[6], rest[7], rest[8]]);
        v.push((rest[3], rest[4], stream, rest[9..9 + len].to_vec()));
        rest = &rest[9 + len..];
    }
    assert!(rest.is_empty(), "trailing bytes");
    v
}

fn decoded(frames: &[(u8, u8, u32, Vec<u8>)]) -> Vec<Vec<(String, String)>> {
    // The server's side: a fresh decoder sees only what the adapter sent.
    let mut dec = loona_hpack::Decoder::new();
    let mut blocks = Vec::new();
    let mut cur = Vec::new();
    for (kind, flags, _, payload) in frames {
        if *kind == HEADERS || *kind == CONTINUATION {
            let skip = if *kind == HEADERS && flags & PRIORITY != 0 {
                5
            } else {
                0
            };
            cur.extend_from_slice(&payload[skip..]);
            if flags & END_HEADERS != 0 {
                let list = dec.decode(&cur).expect("decodes");
                blocks.push(
                    list.into_iter()
                        .map(|(n, v)| {
                            (
                                String::from_utf8_lossy(&n).into_owned(),
                                String::from_utf8_lossy(&v).into_owned(),
                            )
                        })
                        .collect(),
                );
                cur.clear();
            }
        }
    }
    blocks
}

fn authority(block: &[(String, String)]) -> &str {
    block
        .iter()
        .find(|(n, _)| n == ":authority")
        .map(|(_, v)| v.as_str())
        .unwrap_or("<none>")
}

#[tokio::test]
async fn every_local_authority_form_becomes_acceptable() {
    let mut enc = loona_hpack::Encoder::new();
    let mut input = PREFACE.to_vec();
    // SETTINGS passes through untouched.
    input.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
    let forms = [
        "/run/cricket.sock",
        "%2Frun%2Fcricket.sock",
        "",
        "localhost",
        "127.0.0.1:80",
    ];
    for (i, a) in forms.iter().enumerate() {
        let block = client_block(&mut enc, a);
        input.extend(headers_frame(2 * i as u32 + 1, END_HEADERS, &block));
    }
    // gRPC core puts the authority into its dynamic table (literal with incremental
    // indexing, name :authority = static index 1) and then refers to it by index.
    let path = b"/run/cricket.sock";
    let mut block = vec![0x40 | 1, path.len() as u8];
    block.extend_from_slice(path);
    block.extend_from_slice(&[0x83, 0x86]); // :method POST, :scheme http
    input.extend(headers_frame(11, END_HEADERS, &block));
    let again = [0x83, 0x86, 0x80 | 62];
    input.extend(headers_frame(13, END_HEADERS | END_STREAM, &again));
    let out = through(input).await;
    assert!(out.starts_with(PREFACE));
    let fs = frames(&out);
    assert_eq!((fs[0].0, fs[0].3.len()), (4, 0), "SETTINGS as it was");
    let blocks = decoded(&fs);
    let got: Vec<&str> = blocks.iter().map(|b| authority(b)).collect();
    assert_eq!(
        got,
        vec![
            "localhost",
            "localhost",
            "localhost",
            "localhost",
            "127.0.0.1:80",
            "localhost",
            "localhost"
        ]
    );
    for b in &blocks[..5] {
        assert_eq!(
            b[2],
            (":path".into(), "/runtime.v1.RuntimeService/Version".into())
        );
        assert_eq!(b.len(), 6);
    }
    assert_eq!(fs.last().map(|f| f.1 & END_STREAM), Some(END_STREAM));
}

#[tokio::test]
async fn continuation_padding_and_priority() {
    let mut enc = loona_hpack::Encoder::new();
    let block = client_block(&mut enc, "/var/run/x.sock");
    let (a, b) = block.split_at(block.len() / 2);
    let mut input = PREFACE.to_vec();
    // HEADERS, padded (3 bytes) and with a priority, then a CONTINUATION.
    let mut p = vec![3u8];
    p.extend_from_slice(&[0, 0, 0, 0, 16]);
    p.extend_from_slice(a);
    p.extend_from_slice(&[0, 0, 0]);
    input.extend(headers_frame(1, PADDED | PRIORITY, &p));
    frame_header(&mut input, b.len(), CONTINUATION, END_HEADERS, 1);
    input.extend_from_slice(b);
    // DATA passes through.
    input.extend_from_slice(&[0, 0, 2, 0, 1, 0, 0, 0, 1, 7, 7]);
    let fs = frames(&through(input).await);
    assert_eq!(fs[0].0, HEADERS);
    assert_eq!(fs[0].1 & (PRIORITY | PADDED), PRIORITY);
    assert_eq!(&fs[0].3[..5], &[0, 0, 0, 0, 16]);
    assert_eq!(authority(&decoded(&fs)[0]), "localhost");
    assert_eq!(fs.last().map(|f| (f.0, f.3.clone())), Some((0, vec![7, 7])));
}

#[tokio::test]
async fn large_blocks_are_split_at_the_minimum_frame_size() {
    let mut enc = loona_hpack::Encoder::new();
    let big = "x".repeat(40_000);
    let h: Vec<(&[u8], &[u8])> = vec![
        (b":method", b"POST"),
        (b":authority", b"/run/x.sock"),
        (b"x-big", big.as_bytes()),
    ];
    let block = enc.encode(h);
    let mut input = PREFACE.to_vec();
    let mut rest = &block[..];
    let mut first = true;
    while !rest.is_empty() {
        let n = rest.len().min(MAX_FRAME);
        let end = if n == rest.len() { END_HEADERS } else { 0 };
        let kind = if first { HEADERS } else { CONTINUATION };
        frame_header(&mut input, n, kind, end, 1);
        input.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
        first = false;
    }
    let fs = frames(&through(input).await);
    assert!(fs.len() >= 3);
    assert!(fs.iter().all(|f| f.3.len() <= MAX_FRAME));
    let b = &decoded(&fs)[0];
    assert_eq!(authority(b), "localhost");
    assert_eq!(b[2].1.len(), 40_000);
}

#[tokio::test]
async fn what_h2_must_refuse_stays_refusable() {
    // A bad preface goes through as it is.
    let garbage = b"GET / HTTP/1.1\r\n\r\n".to_vec();
    assert_eq!(through(garbage.clone()).await, garbage);
    // A reference past the client's table, or a block that is not HPACK at all (a string
    // longer than the block), becomes one h2 cannot decode either: COMPRESSION_ERROR, as
    // without the adapter.
    let mut input = PREFACE.to_vec();
    input.extend(headers_frame(1, END_HEADERS, &[0xbf]));
    let fs = frames(&through(input).await);
    assert_eq!(fs[0].3, vec![0xff, 0xff, 0xff, 0xff, 0x0f]);
    let mut input = PREFACE.to_vec();
    input.extend(headers_frame(1, END_HEADERS, &[0x40, 0x05, b'a']));
    input.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
    let fs = frames(&through(input).await);
    assert_eq!(fs[0].3, vec![0xff, 0xff, 0xff, 0xff, 0x0f]);
    // A frame interleaved into an unfinished block is forwarded for h2 to refuse.
    let mut enc = loona_hpack::Encoder::new();
    let block = client_block(&mut enc, "/x");
    let mut input = PREFACE.to_vec();
    let h = headers_frame(1, 0, &block);
    input.extend_from_slice(&h);
    input.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
    let out = through(input.clone()).await;
    assert_eq!(out, input);
}

#[test]
fn hpack_integers() {
    let mut v = Vec::new();
    hpack_int(&mut v, 10, 5, 0);
    assert_eq!(v, [10]);
    v.clear();
    hpack_int(&mut v, 1337, 5, 0);
    assert_eq!(v, [31, 154, 10]);
    v.clear();
    hpack_int(&mut v, 127, 7, 0);
    assert_eq!(v, [127, 0]);
}
