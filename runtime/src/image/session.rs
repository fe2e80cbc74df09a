//! One pull's conversation with a registry: GETs with the auth dance (basic, bearer token),
//! registry errors mapped to pull errors, manifests and blobs fetched with size limits and
//! digest checks.

use std::collections::HashMap;
use std::io::Write;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::header;
use hyper::{Request, StatusCode};
use sha2::Digest;

use super::protocol::{ACCEPT, Credentials, HttpClient, PullError, sha256_hex_prefixed};
use super::store::ImageStore;

/// One pull's conversation with a registry (keeps the bearer token it earned).
pub(crate) struct Session<'a> {
    pub(crate) client: &'a HttpClient,
    pub(crate) base: String,
    pub(crate) repo: String,
    pub(crate) creds: Option<Credentials>,
    pub(crate) bearer: Option<String>,
}

impl Session<'_> {
    async fn get(
        &mut self,
        path: &str,
        accept: Option<&str>,
    ) -> Result<hyper::Response<hyper::body::Incoming>, PullError> {
        let url = format!("{}/v2/{}/{path}", self.base, self.repo);
        let mut tried_auth = false;
        loop {
            let mut req = Request::get(&url);
            if let Some(a) = accept {
                req = req.header(header::ACCEPT, a);
            }
            if let Some(t) = &self.bearer {
                req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
            } else if let Some(c) = self.creds.as_ref().filter(|_| tried_auth) {
                req = req.header(header::AUTHORIZATION, c.basic());
            }
            let req = req
                .body(Empty::new())
                .map_err(|e| PullError::Internal(e.to_string()))?;
            let resp = tokio::time::timeout(Duration::from_secs(60), self.client.request(req))
                .await
                .map_err(|_| PullError::Unavailable(format!("GET {url}: no answer within 60s")))?
                .map_err(|e| PullError::Unavailable(format!("GET {url}: {e}")))?;
            if resp.status() != StatusCode::UNAUTHORIZED || tried_auth {
                if resp.status() == StatusCode::UNAUTHORIZED {
                    return Err(PullError::Unauthenticated(format!(
                        "{url}: the registry refused {}",
                        if self.creds.is_some() {
                            "the credentials"
                        } else {
                            "anonymous access (no AuthConfig given)"
                        }
                    )));
                }
                return Ok(resp);
            }
            tried_auth = true;
            let challenge = resp
                .headers()
                .get(header::WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            if challenge.to_ascii_lowercase().starts_with("bearer") {
                self.bearer = Some(self.token(&challenge).await?);
            } else if self
                .creds
                .as_ref()
                .is_none_or(|c| c.username.is_empty() && c.token.is_empty())
            {
                return Err(PullError::Unauthenticated(format!(
                    "{url}: the registry requires credentials and no AuthConfig was given"
                )));
            } else if let Some(c) = self.creds.as_ref().filter(|c| !c.token.is_empty()) {
                self.bearer = Some(c.token.clone());
            }
        }
    }

    /// The bearer-token flow: GET realm?service=…&scope=repository:<repo>:pull.
    async fn token(&mut self, challenge: &str) -> Result<String, PullError> {
        let params: HashMap<String, String> = challenge
            .split_once(' ')
            .map(|(_, rest)| rest)
            .unwrap_or_default()
            .split(',')
            .filter_map(|kv| kv.trim().split_once('='))
            .map(|(k, v)| {
                (
                    k.trim().to_ascii_lowercase(),
                    v.trim().trim_matches('"').to_string(),
                )
            })
            .collect();
        let realm = params.get("realm").ok_or_else(|| {
            PullError::Unauthenticated(format!("bearer challenge without realm: {challenge}"))
        })?;
        if !realm.starts_with("http://") {
            return Err(PullError::Unsupported(format!(
                "token realm {realm} is not plain HTTP"
            )));
        }
        let mut url = format!("{realm}?scope=repository:{}:pull", self.repo);
        if let Some(s) = params.get("service") {
            url.push_str(&format!("&service={s}"));
        }
        let mut req = Request::get(&url);
        if let Some(c) = &self.creds
            && !c.username.is_empty()
        {
            req = req.header(header::AUTHORIZATION, c.basic());
        }
        let req = req
            .body(Empty::new())
            .map_err(|e| PullError::Internal(e.to_string()))?;
        let resp = self
            .client
            .request(req)
            .await
            .map_err(|e| PullError::Unavailable(format!("GET {url}: {e}")))?;
        if !resp.status().is_success() {
            return Err(PullError::Unauthenticated(format!(
                "token endpoint {url} answered {}",
                resp.status()
            )));
        }
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| PullError::Unavailable(e.to_string()))?
            .to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| PullError::Unauthenticated(format!("token response: {e}")))?;
        v["token"]
            .as_str()
            .or(v["access_token"].as_str())
            .map(str::to_string)
            .ok_or_else(|| PullError::Unauthenticated("token response has no token".into()))
    }

    async fn check_status(
        resp: hyper::Response<hyper::body::Incoming>,
        what: &str,
    ) -> Result<hyper::Response<hyper::body::Incoming>, PullError> {
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let body = resp
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let detail = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["errors"][0]["message"].as_str().map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(&body).chars().take(200).collect());
        Err(if status == StatusCode::NOT_FOUND {
            PullError::NotFound(format!("{what}: not found ({detail})"))
        } else {
            PullError::Unavailable(format!("{what}: registry answered {status} ({detail})"))
        })
    }

    pub(crate) async fn manifest(&mut self, reference: &str) -> Result<(Bytes, String), PullError> {
        let what = format!("manifest {}/{}:{reference}", self.base, self.repo);
        let resp = self
            .get(&format!("manifests/{reference}"), Some(ACCEPT))
            .await?;
        let resp = Self::check_status(resp, &what).await?;
        let body = collect_limited(resp, 4 << 20, &what).await?;
        let digest = sha256_hex_prefixed(&body);
        Ok((body, digest))
    }

    pub(crate) async fn blob_bytes(&mut self, digest: &str) -> Result<Bytes, PullError> {
        let what = format!("blob {digest}");
        let resp = self.get(&format!("blobs/{digest}"), None).await?;
        let resp = Self::check_status(resp, &what).await?;
        let body = collect_limited(resp, 16 << 20, &what).await?;
        let got = sha256_hex_prefixed(&body);
        if got != digest {
            return Err(PullError::BadContent(format!(
                "blob {digest} arrived with digest {got}: refused, nothing stored"
            )));
        }
        Ok(body)
    }

    /// Streams a layer blob to a temporary file while hashing it; only a matching digest is
    /// moved into the store.
    pub(crate) async fn blob_to_store(
        &mut self,
        store: &ImageStore,
        digest: &str,
    ) -> Result<(), PullError> {
        let what = format!("blob {digest}");
        let resp = self.get(&format!("blobs/{digest}"), None).await?;
        let resp = Self::check_status(resp, &what).await?;
        let tmp = store.temp_path("blob");
        let mut file = std::fs::File::create(&tmp)
            .map_err(|e| PullError::Internal(format!("{}: {e}", tmp.display())))?;
        let mut hasher = sha2::Sha256::new();
        let mut body = resp.into_body();
        let result: Result<(), PullError> = async {
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|e| PullError::Unavailable(format!("{what}: {e}")))?;
                if let Ok(data) = frame.into_data() {
                    hasher.update(&data);
                    file.write_all(&data)
                        .map_err(|e| PullError::Internal(format!("{}: {e}", tmp.display())))?;
                }
            }
            Ok(())
        }
        .await;
        let got = format!(
            "sha256:{}",
            hasher
                .finalize()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        );
        let result = result.and_then(|()| {
            if got == digest {
                Ok(())
            } else {
                Err(PullError::BadContent(format!(
                    "blob {digest} arrived with digest {got}: refused, nothing stored"
                )))
            }
        });
        if let Err(e) = result {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        let path = store.blob(digest)?;
        std::fs::rename(&tmp, path)
            .map_err(|e| PullError::Internal(format!("storing {digest}: {e}")))
    }
}

async fn collect_limited(
    resp: hyper::Response<hyper::body::Incoming>,
    limit: usize,
    what: &str,
) -> Result<Bytes, PullError> {
    if let Some(len) = resp
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        && len > limit
    {
        return Err(PullError::BadContent(format!(
            "{what} is {len} bytes, over the {limit}-byte limit"
        )));
    }
    let limited = http_body_util::Limited::new(resp.into_body(), limit);
    limited
        .collect()
        .await
        .map(|b| b.to_bytes())
        .map_err(|e| PullError::Unavailable(format!("{what}: {e}")))
}
