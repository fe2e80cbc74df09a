use super::*;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("from str radix"))
        .collect()
}

#[test]
fn block_layout_matches_the_worked_example() {
    let block = encode_block(&Headers::from([("streamType", "error")])).expect("encode block");
    assert_eq!(block.len(), 27);
    assert_eq!(
        block,
        [
            &[0, 0, 0, 1, 0, 0, 0, 10][..],
            b"streamtype",
            &[0, 0, 0, 5],
            b"error"
        ]
        .concat()
    );
    assert_eq!(
        decode_block(&block)
            .expect("decode block")
            .get("StreamType"),
        Some("error")
    );
}

#[test]
fn multiple_values_join_with_nul() {
    let h = Headers::new().with("a", "1").with("A", "2");
    let block = encode_block(&h).expect("encode block");
    assert!(block.windows(3).any(|w| w == b"1\x002"));
    let back = decode_block(&block).expect("decode block");
    assert_eq!(back.get_all("a"), ["1", "2"]);
    assert_eq!(back.get("a"), Some("1"));
    assert!(back.get_all("missing").is_empty());
}

#[test]
fn decode_rejects_lies_and_go_fatal_names() {
    let err = decode_block(&[0, 0, 0]).expect_err("decode block must fail");
    assert!(err.to_string().contains("pair count"), "{err}");
    let err =
        decode_block(&[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]).expect_err("decode block must fail");
    assert!(matches!(
        err,
        HeaderError::CountTooLarge {
            count: u32::MAX,
            ..
        }
    ));
    // One pair whose name claims 100 bytes.
    let err = decode_block(&[0, 0, 0, 1, 0, 0, 0, 100, b'a', 0, 0, 0, 0])
        .expect_err("decode block must fail");
    assert!(err.to_string().contains("name at offset 8"), "{err}");
    let mut b = encode_block(&Headers::from([("a", "b")])).expect("encode block");
    b.push(0);
    assert_eq!(
        decode_block(&b).expect_err("decode block must fail"),
        HeaderError::TrailingBytes(1)
    );
    let upper = [&[0, 0, 0, 1, 0, 0, 0, 4][..], b"Port", &[0, 0, 0, 1], b"1"].concat();
    let err = decode_block(&upper).expect_err("decode block must fail");
    assert_eq!(err.to_string(), "header name \"Port\" is not lowercase");
    let dup = [
        &[0, 0, 0, 2, 0, 0, 0, 1][..],
        b"a",
        &[0, 0, 0, 0, 0, 0, 0, 1],
        b"a",
        &[0, 0, 0, 0],
    ]
    .concat();
    assert_eq!(
        decode_block(&dup).expect_err("decode block must fail"),
        HeaderError::Duplicate("a".into())
    );
    let empty = [0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0];
    assert_eq!(
        decode_block(&empty).expect_err("decode block must fail"),
        HeaderError::EmptyName
    );
}

#[test]
fn forbidden_names_depend_on_the_frame() {
    let h = Headers::from([("host", "x")]);
    assert!(check_forbidden(&h, "SYN_STREAM").is_err());
    assert!(check_forbidden(&h, "SYN_REPLY").is_ok());
    let h = Headers::from([("Transfer-Encoding", "chunked")]);
    let err = check_forbidden(&h, "SYN_REPLY").expect_err("check forbidden must fail");
    assert_eq!(
        err.to_string(),
        "header \"transfer-encoding\" is not allowed in SYN_REPLY"
    );
    assert!(check_forbidden(&Headers::from([(":host", "x")]), "SYN_STREAM").is_ok());
}

#[test]
fn decodes_cpython_vectors_on_one_stream() {
    let mut d = HeaderDecompressor::default();
    let first = d
        .decompress(&hex(
            "78f9e3c6a7c202a62346703a2b294a4dcc851625aca9a08006000000ffff",
        ))
        .expect("decompress");
    assert_eq!(
        decode_block(&first).expect("decode block"),
        Headers::from([("streamtype", "error")])
    );
    let second = d
        .decompress(&hex("c22a054ccc29f9a52500000000ffff"))
        .expect("decompress");
    assert_eq!(
        decode_block(&second).expect("decode block"),
        Headers::from([("streamtype", "stdout")])
    );
}

#[test]
fn decodes_the_empty_syn_reply_vector() {
    let frame = hex("800300020000001400000001 78f9e3c6a7c202a6230600000000ffff"
        .replace(' ', "")
        .as_str());
    let mut d = HeaderDecompressor::default();
    let block = d.decompress(&frame[12..]).expect("decompress");
    assert_eq!(block, [0, 0, 0, 0]);
    assert!(decode_block(&block).expect("decode block").is_empty());
}

#[test]
fn round_trips_many_blocks_through_one_stream_pair() {
    let mut c = HeaderCompressor::new();
    let mut d = HeaderDecompressor::default();
    let first = c
        .compress(&encode_block(&Headers::from([("streamtype", "error")])).expect("encode block"))
        .expect("no error");
    // Best compression with the SPDY dictionary; DICTID follows the zlib header.
    assert_eq!(&first[..6], &[0x78, 0xf9, 0xe3, 0xc6, 0xa7, 0xc2]);
    assert!(first.ends_with(&[0, 0, 0xff, 0xff]));
    assert_eq!(
        decode_block(&d.decompress(&first).expect("decompress"))
            .expect("no error")
            .get("streamtype"),
        Some("error")
    );
    for kind in ["stdin", "stdout", "stderr", "resize", "data"] {
        let h = Headers::from([("streamtype", kind), ("port", "8080"), ("requestid", "7")]);
        let z = c
            .compress(&encode_block(&h).expect("encode block"))
            .expect("no error");
        assert_ne!(&z[..2], &[0x78, 0xf9], "later blocks carry no zlib header");
        assert_eq!(
            decode_block(&d.decompress(&z).expect("decompress")).expect("no error"),
            h
        );
    }
    // A block much larger than the initial buffer guesses.
    let big: String = (0..20_000)
        .map(|i| char::from(b'a' + (i * 7 % 26) as u8))
        .collect();
    let h = Headers::from([("x-big", big.as_str())]);
    let z = c
        .compress(&encode_block(&h).expect("encode block"))
        .expect("no error");
    assert_eq!(
        decode_block(&d.decompress(&z).expect("decompress")).expect("no error"),
        h
    );
}

#[test]
fn accepts_stored_blocks_and_small_windows() {
    // What spdy-transport sends: level 0, window bits 11, same dictionary.
    let mut z = Compress::new_with_window_bits(Compression::none(), true, 11);
    z.set_dictionary(dictionary()).expect("dictionary");
    let block = encode_block(&Headers::from([("streamtype", "stdin")])).expect("encode block");
    let mut out = Vec::with_capacity(256);
    z.compress_vec(&block, &mut out, FlushCompress::Sync)
        .expect("compress vec");
    assert_eq!(&out[..6], &[0x38, 0x30, 0xe3, 0xc6, 0xa7, 0xc2]);
    let mut d = HeaderDecompressor::default();
    assert_eq!(d.decompress(&out).expect("decompress"), block);
}

#[test]
fn caps_a_zlib_bomb() {
    let mut c = HeaderCompressor::new();
    let zeros = vec![0u8; 4 << 20];
    let z = c.compress(&zeros).expect("compress");
    assert!(z.len() < 64 << 10);
    let mut d = HeaderDecompressor::new(1 << 20);
    assert_eq!(
        d.decompress(&z).expect_err("decompress must fail"),
        HeaderError::TooLarge { limit: 1 << 20 }
    );
}

#[test]
fn rejects_other_dictionaries_and_garbage() {
    let mut z = Compress::new(Compression::best(), true);
    z.set_dictionary(b"not the spdy dictionary")
        .expect("set dictionary");
    let mut out = Vec::with_capacity(256);
    z.compress_vec(b"abc", &mut out, FlushCompress::Sync)
        .expect("compress vec");
    let err = HeaderDecompressor::default()
        .decompress(&out)
        .expect_err("decompress must fail");
    assert!(matches!(err, HeaderError::WrongDictionary(_)), "{err}");
    let err = HeaderDecompressor::default()
        .decompress(b"\x01\x02\x03\x04")
        .expect_err("decompress must fail");
    assert!(matches!(err, HeaderError::Decompress(_)), "{err}");
}
