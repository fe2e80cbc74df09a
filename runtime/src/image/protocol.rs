//! What the puller and its registry session share: the manifest types a pull accepts, the
//! credentials from AuthConfig, the errors a pull can end in, the HTTP client type and the
//! digest of a blob.

use base64::Engine;
use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use sha2::Digest;

/// The HTTP(S) client every registry request goes through.
pub(crate) type HttpClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Empty<Bytes>>;

pub(crate) const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

/// Why a pull failed, mapped to a gRPC code by the service.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PullError {
    #[error("{0}")]
    InvalidReference(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    Unavailable(String),
    /// Content that does not match its digest or cannot be parsed.
    #[error("{0}")]
    BadContent(String),
    /// A layer that tries to write outside the rootfs (or otherwise unsafe content).
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("{0}")]
    Internal(String),
}

/// Credentials from the CRI AuthConfig.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    pub username: String,
    pub password: String,
    /// Ready-made bearer token (`registry_token`).
    pub token: String,
}

impl Credentials {
    /// From AuthConfig: `auth` (base64 `user:password`) or username/password.
    pub fn from_auth(
        username: &str,
        password: &str,
        auth: &str,
        registry_token: &str,
    ) -> Result<Option<Self>, PullError> {
        if !registry_token.is_empty() {
            return Ok(Some(Self {
                token: registry_token.into(),
                ..Self::default()
            }));
        }
        if !auth.is_empty() {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(auth.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| {
                    PullError::InvalidReference(
                        "AuthConfig.auth is not base64 of user:password".into(),
                    )
                })?;
            let (u, p) = decoded.split_once(':').ok_or_else(|| {
                PullError::InvalidReference("AuthConfig.auth does not hold user:password".into())
            })?;
            return Ok(Some(Self {
                username: u.into(),
                password: p.into(),
                token: String::new(),
            }));
        }
        if username.is_empty() && password.is_empty() {
            return Ok(None);
        }
        Ok(Some(Self {
            username: username.into(),
            password: password.into(),
            token: String::new(),
        }))
    }

    pub(crate) fn basic(&self) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD
                .encode(format!("{}:{}", self.username, self.password))
        )
    }
}

pub(crate) fn sha256_hex_prefixed(data: &[u8]) -> String {
    let d = sha2::Sha256::digest(data);
    let mut s = String::from("sha256:");
    for b in d {
        s.push_str(&format!("{b:02x}"));
    }
    s
}
