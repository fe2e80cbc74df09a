//! The SPDY/3 header-compression dictionary (SPDY draft 3, §2.6.10.1).
//!
//! Both zlib streams of a session are primed with it, so a peer using any other bytes fails
//! on its first header block. It is rebuilt here from its published structure rather than
//! carried as an opaque table, and the tests pin its length and checksums.

use std::sync::OnceLock;

/// The words that open the dictionary, each preceded by its length as a big-endian u32.
const WORDS: [&str; 65] = [
    "options",
    "head",
    "post",
    "put",
    "delete",
    "trace",
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "accept-ranges",
    "age",
    "allow",
    "authorization",
    "cache-control",
    "connection",
    "content-base",
    "content-encoding",
    "content-language",
    "content-length",
    "content-location",
    "content-md5",
    "content-range",
    "content-type",
    "date",
    "etag",
    "expect",
    "expires",
    "from",
    "host",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "last-modified",
    "location",
    "max-forwards",
    "pragma",
    "proxy-authenticate",
    "proxy-authorization",
    "range",
    "referer",
    "retry-after",
    "server",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "vary",
    "via",
    "warning",
    "www-authenticate",
    "method",
    "get",
    "status",
    "200 OK",
    "version",
    "HTTP/1.1",
    "url",
    "public",
    "set-cookie",
    "keep-alive",
    "origin",
];

/// The raw tail that follows the words, without length prefixes. Spaces are significant.
const TAIL: [&str; 5] = [
    // Status codes, three digits each.
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505",
    // Status lines.
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request\
     401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented\
     503 Service Unavailable",
    // Date fragments.
    "Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, \
     Sun, GMT",
    // Common values.
    "chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,\
     text/plain,text/javascript,publicprivatemax-age=gzip,deflate,sdch",
    "charset=utf-8charset=iso-8859-1,utf-,*,enq=0.",
];

/// The dictionary's Adler-32 checksum, which zlib carries as DICTID in each stream header.
pub const DICTIONARY_ADLER32: u32 = 0xE3C6_A7C2;

/// The SPDY/3 dictionary bytes (1423 of them).
pub fn dictionary() -> &'static [u8] {
    static DICT: OnceLock<Vec<u8>> = OnceLock::new();
    DICT.get_or_init(build)
}

fn build() -> Vec<u8> {
    let mut out = Vec::with_capacity(1423);
    for word in WORDS {
        // The words are short constants; the length always fits.
        out.extend_from_slice(&(word.len() as u32).to_be_bytes());
        out.extend_from_slice(word.as_bytes());
    }
    for part in TAIL {
        out.extend_from_slice(part.as_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest;

    #[test]
    fn matches_the_published_dictionary() {
        let dict = dictionary();
        assert_eq!(dict.len(), 1423);
        assert_eq!(dict[..849].len(), 849);
        let adler = adler2::adler32_slice(dict);
        assert_eq!(adler, 0xE3C6_A7C2);
        assert_eq!(adler, DICTIONARY_ADLER32);
        let sha = sha2::Sha256::digest(dict);
        let hex: String = sha.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "51d27341373f923f3cd88e1eb7162aeaa3723d7585ff2399201dc06498407f02"
        );
    }

    #[test]
    fn words_are_length_prefixed() {
        let dict = dictionary();
        assert_eq!(&dict[..4], &7u32.to_be_bytes());
        assert_eq!(&dict[4..11], b"options");
        let words_len: usize = WORDS.iter().map(|w| 4 + w.len()).sum();
        assert_eq!(words_len, 849);
        assert!(dict[849..].starts_with(b"100101201"));
        assert!(dict.ends_with(b"enq=0."));
    }
}
