//! CRI-format container logs (`<RFC3339Nano> <stdout|stderr> <F|P> <message>`), read from the
//! host path kubelet would read.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use cricket_harness::{CaseError, cri};

/// One line of a CRI container log: `<RFC3339Nano> <stdout|stderr> <F|P> <message>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub timestamp: String,
    pub stream: String,
    pub tag: String,
    pub message: String,
}

/// Parses a CRI log file; a malformed line is an error naming it.
pub fn parse_log(text: &str) -> Result<Vec<LogLine>, String> {
    text.lines()
        .enumerate()
        .map(|(i, l)| {
            let mut parts = l.splitn(4, ' ');
            let (Some(ts), Some(stream), Some(tag)) = (parts.next(), parts.next(), parts.next())
            else {
                return Err(format!(
                    "log line {}: {l:?} is not `<time> <stream> <tag> <message>`",
                    i + 1
                ));
            };
            if !matches!(stream, "stdout" | "stderr")
                || !matches!(tag, "F" | "P")
                || !ts.contains('T')
            {
                return Err(format!("log line {}: {l:?} is not in CRI format", i + 1));
            }
            Ok(LogLine {
                timestamp: ts.into(),
                stream: stream.into(),
                tag: tag.into(),
                message: parts.next().unwrap_or_default().into(),
            })
        })
        .collect()
}

/// The host path of a container's log.
pub fn log_file(pod: &cri::PodSandboxConfig, container: &cri::ContainerConfig) -> PathBuf {
    Path::new(&pod.log_directory).join(&container.log_path)
}

/// Reads and parses a container log; the full messages joined (partial lines rejoined).
pub fn read_log(path: &Path) -> Result<(Vec<LogLine>, HashMap<String, String>), CaseError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        CaseError::fail(
            "container.log.written",
            format!("cannot read container log {}: {e}", path.display()),
        )
    })?;
    let lines = parse_log(&text).map_err(|e| CaseError::fail("container.log.cri_format", e))?;
    let mut by_stream: HashMap<String, String> = HashMap::new();
    for l in &lines {
        let s = by_stream.entry(l.stream.clone()).or_default();
        s.push_str(&l.message);
        if l.tag == "F" {
            s.push('\n');
        }
    }
    Ok((lines, by_stream))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cri_log_lines() {
        let text = "2026-01-01T00:00:00.000000001Z stdout F hello world\n2026-01-01T00:00:00.1Z stderr P part\n";
        let lines = parse_log(text).expect("valid");
        assert_eq!(lines[0].message, "hello world");
        assert_eq!(lines[1].tag, "P");
        assert!(parse_log("hello\n").is_err());
        assert!(parse_log("2026-01-01T00:00:00Z stdin F x\n").is_err());
    }
}
