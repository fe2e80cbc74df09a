//! Image references as users write them (`busybox`, `127.0.0.1:5000/cricket/probe:1`,
//! `repo@sha256:…`), normalised the way kubelet and containerd do, so `busybox` and
//! `docker.io/library/busybox:latest` name the same image.

use std::fmt;

/// A parsed, normalised reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// Registry host, with port (`docker.io`, `127.0.0.1:5000`).
    pub registry: String,
    /// Repository path (`library/busybox`, `cricket/probe`).
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

pub const DEFAULT_REGISTRY: &str = "docker.io";

impl Reference {
    /// Parses and normalises `s`; a reference with neither tag nor digest gets `:latest`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.is_empty() {
            return Err("image reference is empty".into());
        }
        if s.len() > 4096 {
            return Err("image reference is longer than 4096 bytes".into());
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => {
                if !valid_digest(d) {
                    return Err(format!(
                        "invalid digest {d:?} in {s:?} (expected sha256:<64 hex>)"
                    ));
                }
                (r, Some(d.to_string()))
            }
            None => (s, None),
        };
        // A tag follows the last ':' after the last '/' (a ':' before it is a port).
        let (name, tag) = match rest.rfind(':') {
            Some(i) if !rest[i..].contains('/') => (&rest[..i], Some(rest[i + 1..].to_string())),
            _ => (rest, None),
        };
        if let Some(t) = &tag
            && !valid_tag(t)
        {
            return Err(format!("invalid tag {t:?} in {s:?}"));
        }
        let (registry, repository) = match name.split_once('/') {
            Some((first, path)) if first.contains(['.', ':']) || first == "localhost" => {
                (first.to_string(), path.to_string())
            }
            _ => (DEFAULT_REGISTRY.to_string(), name.to_string()),
        };
        let repository = if registry == DEFAULT_REGISTRY && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        if !valid_repository(&repository) {
            return Err(format!("invalid repository name {repository:?} in {s:?}"));
        }
        if registry.is_empty() || registry.contains(['/', '@', ' ']) {
            return Err(format!("invalid registry {registry:?} in {s:?}"));
        }
        let tag = if tag.is_none() && digest.is_none() {
            Some("latest".to_string())
        } else {
            tag
        };
        Ok(Self {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// `registry/repository` (the name without tag or digest).
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// `registry/repository:tag`, when there is a tag.
    pub fn tagged(&self) -> Option<String> {
        self.tag.as_ref().map(|t| format!("{}:{t}", self.name()))
    }

    /// `registry/repository@digest` for a manifest digest.
    pub fn with_digest(&self, digest: &str) -> String {
        format!("{}@{digest}", self.name())
    }

    /// What to ask the registry for: the digest when pinned, else the tag.
    pub fn manifest_reference(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

pub fn valid_digest(d: &str) -> bool {
    d.strip_prefix("sha256:").is_some_and(|h| {
        h.len() == 64
            && h.bytes()
                .all(|x| x.is_ascii_digit() || (b'a'..=b'f').contains(&x))
    })
}

fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|&x| x.is_ascii_alphanumeric() || matches!(x, b'_' | b'.' | b'-'))
}

fn valid_repository(r: &str) -> bool {
    !r.is_empty()
        && r.len() <= 255
        && r.split('/').all(|c| {
            let b = c.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter().all(|&x| {
                    x.is_ascii_lowercase() || x.is_ascii_digit() || matches!(x, b'.' | b'_' | b'-')
                })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> String {
        Reference::parse(s).expect(s).to_string()
    }

    #[test]
    fn normalises_like_kubelet() {
        assert_eq!(norm("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(norm("busybox:1.36"), "docker.io/library/busybox:1.36");
        assert_eq!(norm("k8s.gcr.io/pause:3.9"), "k8s.gcr.io/pause:3.9");
        assert_eq!(
            norm("127.0.0.1:5000/cricket/probe:1"),
            "127.0.0.1:5000/cricket/probe:1"
        );
        assert_eq!(
            norm("127.0.0.1:5000/cricket/probe"),
            "127.0.0.1:5000/cricket/probe:latest"
        );
        assert_eq!(norm("localhost/x"), "localhost/x:latest");
        let d = format!("sha256:{}", "a".repeat(64));
        let r = Reference::parse(&format!("127.0.0.1:5000/cricket/probe@{d}")).expect("digest ref");
        assert_eq!(r.tag, None);
        assert_eq!(r.manifest_reference(), d);
        let both = Reference::parse(&format!("repo/x:1@{d}")).expect("tag and digest");
        assert_eq!(both.tag.as_deref(), Some("1"));
    }

    #[test]
    fn rejects_bad_references_with_a_reason() {
        for bad in [
            "",
            "UPPER/case",
            "x@sha256:short",
            "x:bad tag",
            "a//b",
            "-x",
            "x:",
            "/x",
        ] {
            let e = Reference::parse(bad).expect_err(bad);
            assert!(!e.is_empty());
        }
    }
}
