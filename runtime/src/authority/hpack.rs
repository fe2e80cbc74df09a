//! The client side of one connection's HPACK state (RFC 7541), just enough to read the header
//! blocks a client sends: the static table, the dynamic table with its evictions, integers and
//! strings. Huffman strings go through one `loona-hpack` Huffman decoder kept per connection
//! (it builds its table once, so a reused one is cheap; built per string it cost ~20 µs each).
//! Everything is bounds-checked: a block that is not HPACK, or decodes past the limits, is an
//! error, never a panic or an unbounded allocation.

use std::collections::VecDeque;

/// RFC 7541 Appendix A.
const STATIC: [(&str, &str); 61] = [
    (":authority", ""),
    (":method", "GET"),
    (":method", "POST"),
    (":path", "/"),
    (":path", "/index.html"),
    (":scheme", "http"),
    (":scheme", "https"),
    (":status", "200"),
    (":status", "204"),
    (":status", "206"),
    (":status", "304"),
    (":status", "400"),
    (":status", "404"),
    (":status", "500"),
    ("accept-charset", ""),
    ("accept-encoding", "gzip, deflate"),
    ("accept-language", ""),
    ("accept-ranges", ""),
    ("accept", ""),
    ("access-control-allow-origin", ""),
    ("age", ""),
    ("allow", ""),
    ("authorization", ""),
    ("cache-control", ""),
    ("content-disposition", ""),
    ("content-encoding", ""),
    ("content-language", ""),
    ("content-length", ""),
    ("content-location", ""),
    ("content-range", ""),
    ("content-type", ""),
    ("cookie", ""),
    ("date", ""),
    ("etag", ""),
    ("expect", ""),
    ("expires", ""),
    ("from", ""),
    ("host", ""),
    ("if-match", ""),
    ("if-modified-since", ""),
    ("if-none-match", ""),
    ("if-range", ""),
    ("if-unmodified-since", ""),
    ("last-modified", ""),
    ("link", ""),
    ("location", ""),
    ("max-forwards", ""),
    ("proxy-authenticate", ""),
    ("proxy-authorization", ""),
    ("range", ""),
    ("referer", ""),
    ("refresh", ""),
    ("retry-after", ""),
    ("server", ""),
    ("set-cookie", ""),
    ("strict-transport-security", ""),
    ("transfer-encoding", ""),
    ("user-agent", ""),
    ("vary", ""),
    ("via", ""),
    ("www-authenticate", ""),
];

/// The table size a client may use: the HTTP/2 default, which the server never changes.
const TABLE_LIMIT: usize = 4096;
/// A decoded header list above this is no request anyone makes (hyper refuses lists above
/// 16 KiB itself); stopping here keeps a block of references to big entries from expanding
/// without bound.
pub const MAX_HEADER_LIST: usize = 256 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    Truncated,
    BadIndex(usize),
    TableSize(usize),
    Huffman,
    TooLarge,
}

/// A table entry: name and value, decoded.
pub type Entry = (Vec<u8>, Vec<u8>);

/// A value as far as it had to be decoded: a field the dynamic table keeps, or an
/// `:authority`, is decoded; any other literal is kept as the client encoded it (length
/// prefix and Huffman bit included), since nothing needs it and decoding costs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Decoded(Vec<u8>),
    Encoded(Vec<u8>),
}

/// One field of a block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub name: Vec<u8>,
    pub value: Value,
    /// Sent as "never indexed" (RFC 7541 §6.2.3), which a re-encoding keeps.
    pub sensitive: bool,
}

pub struct Decoder {
    table: VecDeque<Entry>,
    size: usize,
    max: usize,
    huffman: Option<loona_hpack::huffman::HuffmanDecoder>,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

fn entry_size(f: &Entry) -> usize {
    f.0.len() + f.1.len() + 32
}

impl Decoder {
    pub fn new() -> Self {
        Self {
            table: VecDeque::new(),
            size: 0,
            max: TABLE_LIMIT,
            huffman: None,
        }
    }

    fn get(&self, idx: usize) -> Result<Entry, Error> {
        match idx {
            0 => Err(Error::BadIndex(0)),
            1..=61 => {
                let (n, v) = STATIC[idx - 1];
                Ok((n.as_bytes().to_vec(), v.as_bytes().to_vec()))
            }
            _ => self
                .table
                .get(idx - 62)
                .cloned()
                .ok_or(Error::BadIndex(idx)),
        }
    }

    fn evict_to(&mut self, max: usize) {
        while self.size > max {
            match self.table.pop_back() {
                Some(e) => self.size -= entry_size(&e),
                None => break,
            }
        }
    }

    fn insert(&mut self, f: Entry) {
        let s = entry_size(&f);
        if s > self.max {
            // RFC 7541 §4.4: an entry larger than the table empties it and is not added.
            self.table.clear();
            self.size = 0;
            return;
        }
        self.evict_to(self.max - s);
        self.size += s;
        self.table.push_front(f);
    }

    /// The string at `*at`: its bytes as encoded (prefix included), and whether it is Huffman.
    fn raw_string<'b>(block: &'b [u8], at: &mut usize) -> Result<(&'b [u8], usize, bool), Error> {
        let start = *at;
        let huffman = *block.get(*at).ok_or(Error::Truncated)? & 0x80 != 0;
        let len = int(block, at, 7)?;
        let data = *at;
        let end = at
            .checked_add(len)
            .filter(|&e| e <= block.len())
            .ok_or(Error::Truncated)?;
        *at = end;
        Ok((&block[start..end], data - start, huffman))
    }

    fn decode_raw(&mut self, raw: &[u8], skip: usize, huffman: bool) -> Result<Vec<u8>, Error> {
        let data = &raw[skip..];
        if !huffman {
            return Ok(data.to_vec());
        }
        let d = self
            .huffman
            .get_or_insert_with(loona_hpack::huffman::HuffmanDecoder::new);
        d.decode(data).map_err(|_| Error::Huffman)
    }

    fn string(&mut self, block: &[u8], at: &mut usize) -> Result<Vec<u8>, Error> {
        let (raw, skip, huffman) = Self::raw_string(block, at)?;
        self.decode_raw(raw, skip, huffman)
    }

    /// Reads one whole header block, updating the table as the client did.
    pub fn decode(&mut self, block: &[u8]) -> Result<Vec<Field>, Error> {
        let mut out = Vec::new();
        let mut total = 0usize;
        let mut at = 0;
        while at < block.len() {
            let first = block[at];
            let field = if first & 0x80 != 0 {
                let idx = int(block, &mut at, 7)?;
                let (name, value) = self.get(idx)?;
                Field {
                    name,
                    value: Value::Decoded(value),
                    sensitive: false,
                }
            } else if first & 0xe0 == 0x20 {
                let max = int(block, &mut at, 5)?;
                if max > TABLE_LIMIT {
                    return Err(Error::TableSize(max));
                }
                self.max = max;
                self.evict_to(max);
                continue;
            } else {
                let (indexing, prefix) = if first & 0x40 != 0 {
                    (true, 6)
                } else {
                    (false, 4)
                };
                let sensitive = !indexing && first & 0x10 != 0;
                let idx = int(block, &mut at, prefix)?;
                let name = if idx == 0 {
                    self.string(block, &mut at)?
                } else {
                    self.get(idx)?.0
                };
                let (raw, skip, huffman) = Self::raw_string(block, &mut at)?;
                if indexing || name == b":authority" {
                    let value = self.decode_raw(raw, skip, huffman)?;
                    if indexing {
                        self.insert((name.clone(), value.clone()));
                    }
                    Field {
                        name,
                        value: Value::Decoded(value),
                        sensitive,
                    }
                } else {
                    Field {
                        name,
                        value: Value::Encoded(raw.to_vec()),
                        sensitive,
                    }
                }
            };
            // A Huffman string decodes to at most 8/5 of its length.
            let value_len = match &field.value {
                Value::Decoded(v) => v.len(),
                Value::Encoded(r) => r.len() * 8 / 5 + 1,
            };
            total = total.saturating_add(field.name.len() + value_len + 32);
            if total > MAX_HEADER_LIST {
                return Err(Error::TooLarge);
            }
            out.push(field);
        }
        Ok(out)
    }
}

/// An HPACK integer with an `n`-bit prefix at `*at` (RFC 7541 §5.1), at most 32 bits.
pub fn int(block: &[u8], at: &mut usize, n: u32) -> Result<usize, Error> {
    let max = (1usize << n) - 1;
    let first = usize::from(*block.get(*at).ok_or(Error::Truncated)?) & max;
    *at += 1;
    if first < max {
        return Ok(first);
    }
    let mut v = max;
    let mut shift = 0u32;
    loop {
        let b = usize::from(*block.get(*at).ok_or(Error::Truncated)?);
        *at += 1;
        v += (b & 0x7f) << shift;
        if v > u32::MAX as usize {
            return Err(Error::TooLarge);
        }
        if b & 0x80 == 0 {
            return Ok(v);
        }
        shift += 7;
        if shift > 28 {
            return Err(Error::TooLarge);
        }
    }
}

/// The 1-based static index of a field that matches exactly, or of its name.
pub fn static_index(name: &[u8], value: &[u8]) -> (Option<usize>, Option<usize>) {
    let mut by_name = None;
    for (i, (n, v)) in STATIC.iter().enumerate() {
        if n.as_bytes() == name {
            if v.as_bytes() == value {
                return (Some(i + 1), Some(i + 1));
            }
            by_name.get_or_insert(i + 1);
        }
    }
    (None, by_name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The static table is the RFC's: loona-hpack, decoding each index fresh, agrees.
    /// Our fields as plain pairs, decoding what was kept encoded.
    fn pairs(d: &mut Decoder, fields: Vec<Field>) -> Vec<(Vec<u8>, Vec<u8>)> {
        fields
            .into_iter()
            .map(|f| {
                let v = match f.value {
                    Value::Decoded(v) => v,
                    Value::Encoded(raw) => {
                        let mut at = 0;
                        d.string(&raw, &mut at).expect("a string")
                    }
                };
                (f.name, v)
            })
            .collect()
    }

    #[test]
    fn static_table_matches_an_independent_decoder() {
        for i in 1..=61u8 {
            let mut d = loona_hpack::Decoder::new();
            let theirs = d.decode(&[0x80 | i]).expect("static index");
            let mut ours = Decoder::new();
            let fields = ours.decode(&[0x80 | i]).expect("static index");
            assert_eq!(pairs(&mut ours, fields), theirs, "index {i}");
        }
    }

    /// Blocks with incremental indexing, evictions, size updates and Huffman strings decode
    /// as loona-hpack decodes them, block after block.
    #[test]
    fn the_dynamic_table_tracks_the_client() {
        let mut enc = loona_hpack::Encoder::new();
        let mut theirs = loona_hpack::Decoder::new();
        let mut ours = Decoder::new();
        for i in 0..200 {
            let v = format!("value-{i}-{}", "x".repeat(i % 90));
            let h: Vec<(&[u8], &[u8])> = vec![
                (b":method", b"POST"),
                (b":path", b"/runtime.v1.RuntimeService/Version"),
                (b"x-cricket-a", v.as_bytes()),
                (b"x-cricket-b", b"same"),
            ];
            let block = enc.encode(h);
            let fields = ours.decode(&block).expect("ours");
            assert_eq!(
                pairs(&mut ours, fields),
                theirs.decode(&block).expect("theirs"),
                "block {i}"
            );
        }
        // A table size update, then a reference past what is left.
        assert_eq!(ours.decode(&[0x20]), Ok(Vec::new()));
        assert_eq!(ours.decode(&[0x80 | 62]), Err(Error::BadIndex(62)));
        assert_eq!(
            ours.decode(&[0x3f, 0x82, 0x20]),
            Err(Error::TableSize(4129))
        );
        // "www.example.com", Huffman-coded (RFC 7541 C.4.1).
        let huff = [
            0x41, 0x8c, 0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab, 0x90, 0xf4, 0xff,
        ];
        let mut d = Decoder::new();
        let f = d.decode(&huff).expect("decodes");
        assert_eq!(
            pairs(&mut d, f),
            vec![(b":authority".to_vec(), b"www.example.com".to_vec())]
        );
        // The same value without indexing and under another name is kept as it came.
        let mut plain = vec![0x04];
        plain.extend_from_slice(&huff[1..]);
        let f = Decoder::new().decode(&plain).expect("decodes");
        assert_eq!(f[0].name, b":path".to_vec());
        assert_eq!(f[0].value, Value::Encoded(huff[1..].to_vec()));
    }

    #[test]
    fn hostile_blocks_are_errors() {
        for bad in [
            &[0x80][..],
            &[0xff],
            &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
            &[0x40, 0x05, b'a'],
            &[0x41, 0x83, 0xff, 0xff, 0xff],
        ] {
            assert!(Decoder::new().decode(bad).is_err(), "{bad:?}");
        }
        // 4000 references to a 3 KB entry would decode to 12 MB.
        let mut d = Decoder::new();
        let mut block = vec![0x40, 0x03, b'x', b'-', b'a', 0x7f, 0xb9, 0x16];
        block.extend(std::iter::repeat_n(b'v', 3000));
        block.extend(std::iter::repeat_n(0x80 | 62, 4000));
        assert_eq!(d.decode(&block), Err(Error::TooLarge));
    }
}
