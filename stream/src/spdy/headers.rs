//! SPDY/3 name/value header blocks and their session-long zlib compression.
//!
//! Go peers lowercase names on the wire and iterate maps in random order, so lookups ignore
//! case and order. The strict checks on decode mirror the ones that make a Go peer drop the
//! whole session, so a test can name the offending header instead of seeing a dead socket.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::dictionary::{DICTIONARY_ADLER32, dictionary};

/// Default cap on one decompressed header block: far above any real block, low enough that a
/// zlib bomb cannot balloon memory.
pub const DEFAULT_MAX_HEADER_BLOCK: usize = 1 << 20;

/// A header block: names with one or more values each.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers {
    entries: Vec<(String, Vec<String>)>,
}

impl Headers {
    pub fn new() -> Self {
        Self::default()
    }

    /// Builder form of [`Headers::insert`].
    pub fn with(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.insert(name, value);
        self
    }

    /// Adds a value; a name that is already present (in any case) gains another value, because
    /// SPDY allows one entry per name.
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<String>) {
        let name = name.into().to_ascii_lowercase();
        let value = value.into();
        match self.position(&name) {
            Some(i) => self.entries[i].1.push(value),
            None => self.entries.push((name, vec![value])),
        }
    }

    /// Replaces every value of `name`.
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<String>) {
        let name = name.into().to_ascii_lowercase();
        let value = value.into();
        match self.position(&name) {
            Some(i) => self.entries[i].1 = vec![value],
            None => self.entries.push((name, vec![value])),
        }
    }

    pub fn remove(&mut self, name: &str) -> Option<Vec<String>> {
        let i = self.position(name)?;
        Some(self.entries.remove(i).1)
    }

    /// The first value of `name`, ignoring case (like Go's `http.Header.Get`).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.get_all(name).first().map(String::as_str)
    }

    pub fn get_all(&self, name: &str) -> &[String] {
        match self.position(name) {
            Some(i) => &self.entries[i].1,
            None => &[],
        }
    }

    pub fn contains(&self, name: &str) -> bool {
        self.position(name).is_some()
    }

    /// Number of distinct names.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &[String])> {
        self.entries.iter().map(|(n, v)| (n.as_str(), v.as_slice()))
    }

    fn position(&self, name: &str) -> Option<usize> {
        self.entries
            .iter()
            .position(|(n, _)| n.eq_ignore_ascii_case(name))
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Headers {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut h = Headers::new();
        for (k, v) in iter {
            h.insert(k, v);
        }
        h
    }
}

impl<K: Into<String>, V: Into<String>, const N: usize> From<[(K, V); N]> for Headers {
    fn from(pairs: [(K, V); N]) -> Self {
        pairs.into_iter().collect()
    }
}

/// What is wrong with a header block; each variant names the part at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("header block truncated: {what} at offset {offset} needs {needed} bytes, {left} left")]
    Truncated {
        what: &'static str,
        offset: usize,
        needed: u64,
        left: usize,
    },
    #[error("header block claims {count} pairs but its {len} bytes can hold at most {max}")]
    CountTooLarge { count: u32, len: usize, max: usize },
    #[error("header block has {0} bytes after its last pair")]
    TrailingBytes(usize),
    #[error("header block has an empty name")]
    EmptyName,
    #[error("header name {0:?} is not lowercase")]
    NotLowercase(String),
    #[error("header name {0:?} appears twice")]
    Duplicate(String),
    #[error("header {name:?} is not allowed in {frame}")]
    Forbidden { name: String, frame: &'static str },
    #[error("header block too large to encode ({0} bytes)")]
    EncodeTooLarge(usize),
    #[error("header block decompresses to more than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("header block wants zlib dictionary {0:#010x}, not the SPDY/3 one (0xe3c6a7c2)")]
    WrongDictionary(u32),
    #[error("header block is not valid zlib data: {0}")]
    Decompress(String),
    #[error("header block has bytes after the end of the zlib stream")]
    AfterStreamEnd,
    #[error("header compression failed: {0}")]
    Compress(String),
}

/// Serializes a block before compression. Names go out lowercase.
pub fn encode_block(headers: &Headers) -> Result<Vec<u8>, HeaderError> {
    let mut out = Vec::with_capacity(64);
    put_len(&mut out, headers.len())?;
    for (name, values) in headers.iter() {
        let name = name.to_ascii_lowercase();
        put_len(&mut out, name.len())?;
        out.extend_from_slice(name.as_bytes());
        let joined = values.join("\0");
        put_len(&mut out, joined.len())?;
        out.extend_from_slice(joined.as_bytes());
    }
    Ok(out)
}

fn put_len(out: &mut Vec<u8>, n: usize) -> Result<(), HeaderError> {
    let n = u32::try_from(n).map_err(|_| HeaderError::EncodeTooLarge(n))?;
    out.extend_from_slice(&n.to_be_bytes());
    Ok(())
}

/// Parses a decompressed block, rejecting what a Go peer treats as fatal.
pub fn decode_block(block: &[u8]) -> Result<Headers, HeaderError> {
    let mut r = Reader { buf: block, pos: 0 };
    let count = r.u32("pair count")?;
    // Each pair needs at least its two length fields, so a larger count is a lie.
    let max = block.len().saturating_sub(4) / 8;
    if count as usize > max {
        return Err(HeaderError::CountTooLarge {
            count,
            len: block.len(),
            max,
        });
    }
    let mut headers = Headers::new();
    for _ in 0..count {
        let name_len = r.u32("name length")?;
        let name = r.bytes("name", name_len)?;
        let value_len = r.u32("value length")?;
        let value = r.bytes("value", value_len)?;
        let name = String::from_utf8_lossy(name).into_owned();
        if name.is_empty() {
            return Err(HeaderError::EmptyName);
        }
        if name.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(HeaderError::NotLowercase(name));
        }
        if headers.contains(&name) {
            return Err(HeaderError::Duplicate(name));
        }
        let values = String::from_utf8_lossy(value)
            .split('\0')
            .map(str::to_owned)
            .collect();
        headers.entries.push((name, values));
    }
    if r.pos != block.len() {
        return Err(HeaderError::TrailingBytes(block.len() - r.pos));
    }
    Ok(headers)
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn u32(&mut self, what: &'static str) -> Result<u32, HeaderError> {
        let b = self.bytes(what, 4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn bytes(&mut self, what: &'static str, n: u32) -> Result<&'a [u8], HeaderError> {
        let left = self.buf.len() - self.pos;
        if n as usize > left {
            return Err(HeaderError::Truncated {
                what,
                offset: self.pos,
                needed: u64::from(n),
                left,
            });
        }
        let s = &self.buf[self.pos..self.pos + n as usize];
        self.pos += n as usize;
        Ok(s)
    }
}

/// Header names that make a Go peer kill the session when they appear in a SYN_STREAM
/// (SYN_REPLY allows `host`).
const CONNECTION_SPECIFIC: [&str; 5] = [
    "connection",
    "host",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
];

/// Checks a decoded block against the connection-specific names `frame` must not carry.
pub(crate) fn check_forbidden(headers: &Headers, frame: &'static str) -> Result<(), HeaderError> {
    for name in CONNECTION_SPECIFIC {
        if name == "host" && frame != "SYN_STREAM" {
            continue;
        }
        if headers.contains(name) {
            return Err(HeaderError::Forbidden {
                name: name.to_owned(),
                frame,
            });
        }
    }
    Ok(())
}

/// The sending direction's zlib stream: one per session, so later blocks can refer back to
/// earlier ones, and sync-flushed so each frame decodes on its own.
pub struct HeaderCompressor {
    z: Compress,
    primed: bool,
}

impl Default for HeaderCompressor {
    fn default() -> Self {
        Self::new()
    }
}

impl HeaderCompressor {
    pub fn new() -> Self {
        Self {
            z: Compress::new(Compression::best(), true),
            primed: false,
        }
    }

    /// Compresses one serialized block; the result ends with a sync flush (`00 00 ff ff`).
    pub fn compress(&mut self, block: &[u8]) -> Result<Vec<u8>, HeaderError> {
        if !self.primed {
            self.z
                .set_dictionary(dictionary())
                .map_err(|e| HeaderError::Compress(e.to_string()))?;
            self.primed = true;
        }
        let mut out = Vec::with_capacity(block.len() + 64);
        let mut consumed = 0usize;
        loop {
            if out.capacity() - out.len() < 32 {
                out.reserve(256);
            }
            let (in0, out0) = (self.z.total_in(), self.z.total_out());
            self.z
                .compress_vec(&block[consumed..], &mut out, FlushCompress::Sync)
                .map_err(|e| HeaderError::Compress(e.to_string()))?;
            let used = (self.z.total_in() - in0) as usize;
            consumed += used;
            // A full output buffer may hide more pending output; only stop when zlib had room.
            if consumed == block.len() && out.len() < out.capacity() {
                return Ok(out);
            }
            if used == 0 && self.z.total_out() == out0 && out.len() < out.capacity() {
                return Err(HeaderError::Compress("zlib made no progress".into()));
            }
        }
    }
}

/// The receiving direction's zlib stream, created on the first header block.
pub struct HeaderDecompressor {
    z: Option<Decompress>,
    limit: usize,
    ended: bool,
}

impl Default for HeaderDecompressor {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_HEADER_BLOCK)
    }
}

impl HeaderDecompressor {
    /// `limit` caps one block's decompressed size.
    pub fn new(limit: usize) -> Self {
        Self {
            z: None,
            limit,
            ended: false,
        }
    }

    /// Inflates one frame's compressed block completely.
    pub fn decompress(&mut self, input: &[u8]) -> Result<Vec<u8>, HeaderError> {
        if self.ended && !input.is_empty() {
            return Err(HeaderError::AfterStreamEnd);
        }
        let z = self.z.get_or_insert_with(|| Decompress::new(true));
        let mut out: Vec<u8> = Vec::with_capacity(
            input
                .len()
                .saturating_mul(4)
                .max(64)
                .min(self.limit.saturating_add(1)),
        );
        let mut consumed = 0usize;
        loop {
            if out.len() == out.capacity() {
                if out.len() > self.limit {
                    return Err(HeaderError::TooLarge { limit: self.limit });
                }
                let room = out
                    .capacity()
                    .max(64)
                    .min(self.limit.saturating_add(1) - out.len());
                out.reserve_exact(room);
            }
            let (in0, out0) = (z.total_in(), z.total_out());
            let status = z.decompress_vec(&input[consumed..], &mut out, FlushDecompress::Sync);
            let used = (z.total_in() - in0) as usize;
            let produced = z.total_out() - out0;
            consumed += used;
            match status {
                Ok(Status::StreamEnd) => {
                    self.ended = true;
                    if consumed != input.len() {
                        return Err(HeaderError::AfterStreamEnd);
                    }
                }
                Ok(_) => {}
                Err(e) => match e.needs_dictionary() {
                    Some(DICTIONARY_ADLER32) => {
                        z.set_dictionary(dictionary())
                            .map_err(|e| HeaderError::Decompress(e.to_string()))?;
                        continue;
                    }
                    Some(other) => return Err(HeaderError::WrongDictionary(other)),
                    None => return Err(HeaderError::Decompress(e.to_string())),
                },
            }
            if out.len() > self.limit {
                return Err(HeaderError::TooLarge { limit: self.limit });
            }
            let room_left = out.len() < out.capacity();
            if (consumed == input.len() || self.ended) && room_left {
                return Ok(out);
            }
            if used == 0 && produced == 0 && room_left {
                return Err(HeaderError::Decompress("zlib made no progress".into()));
            }
        }
    }
}

#[cfg(test)]
#[path = "headers_tests.rs"]
mod tests;
