//! The CRI container log format: `<RFC3339Nano> <stdout|stderr> <F|P> <message>\n`, one entry
//! per line of output; a line longer than 16 KiB, or one the process ends without a newline,
//! is written in `P` (partial) pieces, the last piece of a line as `F`.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;

/// Longest piece of one line in one log entry (kubelet's and containerd's limit).
pub const MAX_LINE: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

pub struct LogWriter {
    /// Tag for an unterminated last line: `P`, or `F` under fault `log-no-partial`.
    pub partial_tag: char,
    path: Option<PathBuf>,
    file: Option<File>,
    pending: [Vec<u8>; 2],
}

/// RFC 3339 with nanoseconds in UTC, as CRI log readers parse it.
pub fn timestamp(ns: i64) -> String {
    let secs = ns.div_euclid(1_000_000_000);
    let nanos = ns.rem_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (h, m, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if mo <= 2 { 1 } else { 0 };
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}.{nanos:09}Z")
}

impl LogWriter {
    pub fn open(path: Option<PathBuf>) -> std::io::Result<Self> {
        let mut w = Self {
            partial_tag: 'P',
            path,
            file: None,
            pending: [Vec::new(), Vec::new()],
        };
        w.reopen()?;
        Ok(w)
    }

    /// Opens the log path again (ReopenContainerLog after rotation).
    pub fn reopen(&mut self) -> std::io::Result<()> {
        if let Some(p) = &self.path {
            if let Some(dir) = p.parent() {
                std::fs::create_dir_all(dir)?;
            }
            self.file = Some(OpenOptions::new().create(true).append(true).open(p)?);
        }
        Ok(())
    }

    fn emit(&mut self, stream: Stream, tag: char, msg: &[u8]) {
        let Some(f) = self.file.as_mut() else { return };
        let mut line = Vec::with_capacity(msg.len() + 48);
        line.extend_from_slice(timestamp(crate::sys::now_ns()).as_bytes());
        line.push(b' ');
        line.extend_from_slice(stream.name().as_bytes());
        line.push(b' ');
        line.push(tag as u8);
        line.push(b' ');
        line.extend_from_slice(msg);
        line.push(b'\n');
        let _ = f.write_all(&line);
    }

    /// Takes a chunk of output from one stream.
    pub fn write(&mut self, stream: Stream, data: &[u8]) {
        let i = stream as usize;
        let mut buf = std::mem::take(&mut self.pending[i]);
        buf.extend_from_slice(data);
        let mut start = 0;
        while let Some(nl) = buf[start..].iter().position(|&b| b == b'\n') {
            let end = start + nl;
            let mut s = start;
            while end - s > MAX_LINE {
                self.emit(stream, 'P', &buf[s..s + MAX_LINE]);
                s += MAX_LINE;
            }
            self.emit(stream, 'F', &buf[s..end]);
            start = end + 1;
        }
        while buf.len() - start >= MAX_LINE {
            self.emit(stream, 'P', &buf[start..start + MAX_LINE]);
            start += MAX_LINE;
        }
        self.pending[i] = buf[start..].to_vec();
    }

    /// At end of output: a line without its newline is written as partial.
    pub fn finish(&mut self) {
        for stream in [Stream::Stdout, Stream::Stderr] {
            let rest = std::mem::take(&mut self.pending[stream as usize]);
            if !rest.is_empty() {
                let tag = self.partial_tag;
                self.emit(stream, tag, &rest);
            }
        }
        if let Some(f) = self.file.as_mut() {
            let _ = f.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_nano() {
        assert_eq!(timestamp(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            timestamp(1_700_000_000_123_456_789),
            "2023-11-14T22:13:20.123456789Z"
        );
        assert_eq!(
            timestamp(951_782_400_000_000_001),
            "2000-02-29T00:00:00.000000001Z"
        );
    }

    #[test]
    fn lines_partials_and_long_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("c.log");
        let mut w = LogWriter::open(Some(p.clone())).expect("open");
        w.write(Stream::Stdout, b"hel");
        w.write(Stream::Stdout, b"lo\nwor");
        w.write(Stream::Stderr, b"oops\n");
        w.write(Stream::Stdout, &vec![b'x'; MAX_LINE + 10]);
        w.write(Stream::Stdout, b"\n");
        w.write(Stream::Stdout, b"tail");
        w.finish();
        let text = std::fs::read_to_string(&p).expect("log");
        let entries: Vec<(String, String, String)> = text
            .lines()
            .map(|l| {
                let mut it = l.splitn(4, ' ');
                let _ts = it.next();
                (
                    it.next().unwrap_or_default().into(),
                    it.next().unwrap_or_default().into(),
                    it.next().unwrap_or_default().chars().take(5).collect(),
                )
            })
            .collect();
        assert_eq!(entries[0], ("stdout".into(), "F".into(), "hello".into()));
        assert_eq!(entries[1], ("stderr".into(), "F".into(), "oops".into()));
        assert_eq!(entries[2], ("stdout".into(), "P".into(), "worxx".into()));
        assert_eq!(entries[3].1, "F");
        assert_eq!(entries[4], ("stdout".into(), "P".into(), "tail".into()));
        assert_eq!(
            text.lines()
                .nth(2)
                .map(|l| l.rsplit(' ').next().map(str::len)),
            Some(Some(MAX_LINE))
        );
    }
}
