use super::*;

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("from str radix"))
        .collect()
}

fn encode(enc: &mut FrameEncoder, f: &Frame) -> Vec<u8> {
    let mut out = BytesMut::new();
    enc.encode(f, &mut out).expect("encode");
    out.to_vec()
}

fn decode_all(dec: &mut FrameDecoder, bytes: &[u8]) -> Vec<Frame> {
    let mut buf = BytesMut::from(bytes);
    let mut frames = Vec::new();
    while let Some(f) = dec.decode(&mut buf).expect("decode") {
        frames.push(f);
    }
    assert!(buf.is_empty(), "{} bytes left over", buf.len());
    frames
}

fn decode_err(bytes: &[u8]) -> FrameError {
    let mut buf = BytesMut::from(bytes);
    FrameDecoder::default()
        .decode(&mut buf)
        .expect_err("decode must fail")
}

#[test]
fn fixed_frames_have_exact_bytes() {
    let mut enc = FrameEncoder::new();
    let cases: Vec<(Frame, &str)> = vec![
        (
            Frame::RstStream {
                stream_id: 3,
                status: RstStatus::Cancel,
            },
            "8003 0003 00000008 00000003 00000005",
        ),
        (Frame::Ping { id: 7 }, "8003 0006 00000004 00000007"),
        (
            Frame::GoAway {
                last_good_stream_id: 5,
                status: GoAwayStatus::Ok,
            },
            "8003 0007 00000008 00000005 00000000",
        ),
        (
            Frame::WindowUpdate {
                stream_id: 0,
                delta: 0x8000,
            },
            "8003 0009 00000008 00000000 00008000",
        ),
        (
            Frame::Settings {
                clear: false,
                entries: vec![Setting {
                    flags: SETTINGS_FLAG_PERSIST_VALUE,
                    id: SETTINGS_INITIAL_WINDOW_SIZE,
                    value: 1 << 20,
                }],
            },
            "8003 0004 0000000c 00000001 01000007 00100000",
        ),
        (
            Frame::Data {
                stream_id: 3,
                fin: true,
                data: Bytes::from_static(b"hello"),
            },
            "00000003 01000005 68656c6c6f",
        ),
        (
            Frame::Data {
                stream_id: 0x7fff_ffff,
                fin: false,
                data: Bytes::new(),
            },
            "7fffffff 00000000",
        ),
    ];
    for (frame, want) in cases {
        let bytes = encode(&mut enc, &frame);
        assert_eq!(bytes, hex(want), "{frame:?}");
        assert_eq!(
            decode_all(&mut FrameDecoder::default(), &bytes),
            vec![frame]
        );
    }
}

#[test]
fn header_frames_round_trip_on_one_zlib_stream() {
    let mut enc = FrameEncoder::new();
    let frames = vec![
        Frame::SynStream {
            stream_id: 1,
            associated_to: 0,
            priority: 0,
            slot: 0,
            fin: false,
            unidirectional: false,
            headers: Headers::from([("streamtype", "error")]),
        },
        Frame::SynStream {
            stream_id: 3,
            associated_to: 1,
            priority: 7,
            slot: 2,
            fin: true,
            unidirectional: true,
            headers: Headers::from([("streamtype", "data"), ("port", "80"), ("requestid", "0")]),
        },
        Frame::SynReply {
            stream_id: 1,
            fin: false,
            headers: Headers::from([(":status", "200"), (":version", "HTTP/1.1")]),
        },
        Frame::Headers {
            stream_id: 3,
            fin: true,
            headers: Headers::from([("x-trailer", "1")]),
        },
        Frame::SynReply {
            stream_id: 5,
            fin: true,
            headers: Headers::new(),
        },
    ];
    let mut wire = Vec::new();
    for f in &frames {
        wire.extend(encode(&mut enc, f));
    }
    assert_eq!(decode_all(&mut FrameDecoder::default(), &wire), frames);

    // The fixed part of the second SYN_STREAM: flags FIN|UNIDIRECTIONAL, priority 7 << 5.
    let mut enc = FrameEncoder::new();
    let bytes = encode(&mut enc, &frames[1]);
    assert_eq!(&bytes[..4], &[0x80, 0x03, 0x00, 0x01]);
    assert_eq!(bytes[4], 0x03);
    assert_eq!(&bytes[8..18], &[0, 0, 0, 3, 0, 0, 0, 1, 0xe0, 2]);
    let len = u32::from_be_bytes([0, bytes[5], bytes[6], bytes[7]]) as usize;
    assert_eq!(len, bytes.len() - 8);
}

#[test]
fn decodes_the_go_empty_syn_reply() {
    let wire = hex("8003 0002 00000014 00000001 78f9e3c6a7c202a6230600000000ffff");
    let frames = decode_all(&mut FrameDecoder::default(), &wire);
    assert_eq!(
        frames,
        vec![Frame::SynReply {
            stream_id: 1,
            fin: false,
            headers: Headers::new()
        }]
    );
}

#[test]
fn decoding_is_incremental() {
    let mut enc = FrameEncoder::new();
    let mut wire = encode(
        &mut enc,
        &Frame::SynStream {
            stream_id: 1,
            associated_to: 0,
            priority: 0,
            slot: 0,
            fin: false,
            unidirectional: false,
            headers: Headers::from([("streamtype", "stdin")]),
        },
    );
    wire.extend(encode(&mut enc, &Frame::Ping { id: 1 }));
    let mut dec = FrameDecoder::default();
    let mut buf = BytesMut::new();
    let mut got = Vec::new();
    for b in wire {
        buf.put_u8(b);
        if let Some(f) = dec.decode(&mut buf).expect("decode") {
            got.push(f.name());
        }
    }
    assert_eq!(got, ["SYN_STREAM", "PING"]);
    assert!(buf.is_empty());
}

#[test]
fn protocol_errors_name_the_frame() {
    let cases: Vec<(&str, &str)> = vec![
        (
            "8003 0001 00000006 000000010000",
            "SYN_STREAM shorter than 10 bytes (length 6)",
        ),
        ("8003 0005 00000000", "control frame type 5 is not SPDY/3.1"),
        (
            "8003 000a 00000000",
            "control frame type 10 is not SPDY/3.1",
        ),
        (
            "8003 f000 00000000",
            "control frame type 61440 is not SPDY/3.1",
        ),
        (
            "8002 0006 00000004 00000001",
            "control frame version 2, expected 3",
        ),
        (
            "8003 0007 0000000c 00000001 00000000 00000000",
            "GOAWAY length 12, expected 8",
        ),
        (
            "8003 0007 01000008 00000001 00000000",
            "GOAWAY flags 0x01, expected 0",
        ),
        ("8003 0006 01000004 00000001", "PING flags 0x01, expected 0"),
        ("8003 0006 00000004 00000000", "PING with id 0"),
        (
            "8003 0006 00000008 00000001 00000001",
            "PING length 8, expected 4",
        ),
        (
            "8003 0003 00000008 00000001 00000000",
            "RST_STREAM for stream 1 with status 0",
        ),
        (
            "8003 0003 00000008 00000000 00000005",
            "RST_STREAM for stream 0",
        ),
        (
            "8003 0003 00000004 00000001",
            "RST_STREAM length 4, expected 8",
        ),
        (
            "8003 0009 00000004 00000001",
            "WINDOW_UPDATE length 4, expected 8",
        ),
        (
            "8003 0004 00000008 00000002 00000000",
            "SETTINGS length 8 does not match its 2 entries (expected 20)",
        ),
        (
            "8003 0002 00000002 0000",
            "SYN_REPLY shorter than 4 bytes (length 2)",
        ),
        ("00000000 00000000", "DATA for stream 0"),
        (
            "8003 0001 0000000e 00000000 00000000 0000 00000000",
            "SYN_STREAM for stream 0",
        ),
    ];
    for (wire, want) in cases {
        assert_eq!(decode_err(&hex(wire)).to_string(), want, "{wire}");
    }
}

#[test]
fn oversize_length_fails_from_the_header_alone() {
    let mut dec = FrameDecoder::new(1 << 20, DEFAULT_MAX_HEADER_BLOCK);
    // A DATA frame claiming 16 MiB - 1 with none of its payload present.
    let mut buf = BytesMut::from(&hex("00000001 00ffffff")[..]);
    let err = dec.decode(&mut buf).expect_err("decode must fail");
    assert_eq!(
        err.to_string(),
        "frame length 16777215 exceeds the limit of 1048576 bytes"
    );
    assert!(buf.capacity() < 1 << 20, "must not reserve for the lie");
    // Within the limit it waits for the rest instead.
    let mut dec = FrameDecoder::default();
    let mut buf = BytesMut::from(&hex("00000001 00000010 0102")[..]);
    assert_eq!(dec.decode(&mut buf).expect("decode"), None);
}

#[test]
fn header_block_errors_name_frame_and_header() {
    let syn = |headers: Headers| Frame::SynStream {
        stream_id: 1,
        associated_to: 0,
        priority: 0,
        slot: 0,
        fin: false,
        unidirectional: false,
        headers,
    };
    let bytes = encode(
        &mut FrameEncoder::new(),
        &syn(Headers::from([("Host", "x")])),
    );
    let err = FrameDecoder::default()
        .decode(&mut BytesMut::from(&bytes[..]))
        .expect_err("decode must fail");
    assert_eq!(
        err.to_string(),
        "SYN_STREAM for stream 1: header \"host\" is not allowed in SYN_STREAM"
    );

    // Hand-made block with an uppercase name, compressed like a peer would.
    let mut raw = vec![0, 0, 0, 1, 0, 0, 0, 10];
    raw.extend_from_slice(b"streamType");
    raw.extend_from_slice(&[0, 0, 0, 5]);
    raw.extend_from_slice(b"error");
    let block = HeaderCompressor::new().compress(&raw).expect("compress");
    let mut wire = hex("8003 0002");
    wire.extend_from_slice(&((4 + block.len()) as u32).to_be_bytes());
    wire.extend_from_slice(&[0, 0, 0, 9]);
    wire.extend_from_slice(&block);
    let err = FrameDecoder::default()
        .decode(&mut BytesMut::from(&wire[..]))
        .expect_err("decode must fail");
    assert_eq!(
        err.to_string(),
        "SYN_REPLY for stream 9: header name \"streamType\" is not lowercase"
    );

    // A block that is not zlib at all.
    let wire = hex("8003 0008 00000008 00000001 deadbeef");
    let err = decode_err(&wire);
    assert!(
        err.to_string()
            .starts_with("HEADERS for stream 1: header block is not valid zlib data"),
        "{err}"
    );
}

#[test]
fn encode_refuses_what_does_not_fit() {
    let mut enc = FrameEncoder::new();
    let mut out = BytesMut::new();
    let err = enc
        .encode(
            &Frame::Data {
                stream_id: 1 << 31,
                fin: false,
                data: Bytes::new(),
            },
            &mut out,
        )
        .expect_err("encode must fail");
    assert_eq!(
        err.to_string(),
        "DATA: stream id 2147483648 does not fit 31 bits"
    );
    let err = enc
        .encode(
            &Frame::Data {
                stream_id: 1,
                fin: false,
                data: Bytes::from(vec![0; 1 << 24]),
            },
            &mut out,
        )
        .expect_err("encode must fail");
    assert!(matches!(err, EncodeError::TooLong { .. }));
    let err = enc
        .encode(
            &Frame::SynStream {
                stream_id: 1,
                associated_to: 0,
                priority: 8,
                slot: 0,
                fin: false,
                unidirectional: false,
                headers: Headers::new(),
            },
            &mut out,
        )
        .expect_err("priority 8 must fail");
    assert_eq!(err, EncodeError::Priority(8));
}

#[test]
fn status_codes_round_trip() {
    for code in 1..=11 {
        let s = RstStatus::from_code(code);
        assert!(!matches!(s, RstStatus::Unknown(_)));
        assert_eq!(s.code(), code);
    }
    assert_eq!(RstStatus::from_code(99), RstStatus::Unknown(99));
    assert_eq!(RstStatus::Cancel.to_string(), "CANCEL");
    assert_eq!(RstStatus::Unknown(99).to_string(), "unknown status 99");
    assert_eq!(GoAwayStatus::from_code(2), GoAwayStatus::InternalError);
    assert_eq!(GoAwayStatus::Unknown(7).code(), 7);
}

/// A small deterministic generator, so the no-panic sweep needs no extra crate.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u8 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) as u8
    }
}

#[test]
fn arbitrary_bytes_never_panic() {
    let mut enc = FrameEncoder::new();
    let mut valid = Vec::new();
    for f in [
        Frame::SynStream {
            stream_id: 1,
            associated_to: 0,
            priority: 0,
            slot: 0,
            fin: false,
            unidirectional: false,
            headers: Headers::from([("streamtype", "error"), ("port", "80")]),
        },
        Frame::Settings {
            clear: false,
            entries: vec![Setting {
                flags: 0,
                id: 7,
                value: 1,
            }],
        },
        Frame::Ping { id: 1 },
        Frame::Data {
            stream_id: 1,
            fin: true,
            data: Bytes::from_static(b"abc"),
        },
    ] {
        valid.extend(encode(&mut enc, &f));
    }
    let mut rng = Lcg(7);
    for round in 0..3000 {
        let bytes = if round % 2 == 0 {
            // Valid frames with a few bytes flipped.
            let mut v = valid.clone();
            for _ in 0..1 + rng.next() % 4 {
                let i = usize::from(rng.next()) * usize::from(rng.next()) % v.len();
                v[i] ^= rng.next() | 1;
            }
            v
        } else {
            // Random bytes behind a plausible control header.
            let len = usize::from(rng.next() % 64);
            let mut v = vec![
                0x80,
                0x03,
                0x00,
                rng.next() % 10,
                rng.next() % 4,
                0,
                0,
                len as u8,
            ];
            v.extend((0..len).map(|_| rng.next()));
            v
        };
        let mut dec = FrameDecoder::new(1 << 16, 1 << 16);
        let mut buf = BytesMut::from(&bytes[..]);
        while let Ok(Some(_)) = dec.decode(&mut buf) {}
    }
}
