//! Where the gRPC protocol says one thing and tonic's server does another, the runtime follows
//! the protocol (and grpc-go, which kubelet and crictl are built on):
//! - a call whose `grpc-timeout` runs out ends with DEADLINE_EXCEEDED; tonic answers
//!   CANCELLED ("Timeout expired");
//! - a request message over the receive limit is RESOURCE_EXHAUSTED, naming the limit; tonic
//!   answers OUT_OF_RANGE.
//!
//! A tower layer inside tonic's own timeout layer: tonic polls the call before its timer, so a
//! deadline fired here (a hair earlier than tonic's) is the answer the client sees.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tonic::codegen::http;

/// Fires this much before tonic's own timer for the same `grpc-timeout`, so ours wins.
const AHEAD: Duration = Duration::from_millis(2);

/// Parses a `grpc-timeout` value: at most 8 digits and a unit (gRPC over HTTP/2:
/// `TimeoutValue TimeoutUnit`, units H M S m u n).
pub fn parse_timeout(v: &str) -> Option<Duration> {
    if v.len() < 2 || v.len() > 9 {
        return None;
    }
    let (digits, unit) = v.split_at(v.len() - 1);
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[derive(Clone)]
pub struct GrpcRules<S> {
    inner: S,
    /// The receive limit named in a RESOURCE_EXHAUSTED answer.
    max_recv: usize,
    faults: crate::fault::Faults,
}

impl<S> GrpcRules<S> {
    pub fn layer(
        max_recv: usize,
        faults: crate::fault::Faults,
    ) -> impl tower::Layer<S, Service = GrpcRules<S>> + Clone {
        tower::layer::layer_fn(move |inner| GrpcRules {
            inner,
            max_recv,
            faults: faults.clone(),
        })
    }
}

type BoxFut<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S, B> tower::Service<http::Request<B>> for GrpcRules<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFut<S::Response, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        use crate::fault::Fault;
        let deadline = req
            .headers()
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_timeout)
            .filter(|_| !self.faults.has(Fault::DeadlineCancelled));
        if self.faults.has(Fault::GzipInternal)
            && req
                .headers()
                .get("grpc-encoding")
                .is_some_and(|v| v == "gzip")
        {
            return Box::pin(async { Ok(tonic::Status::internal("compressed").into_http()) });
        }
        let max_recv = (!self.faults.has(Fault::OversizeOutOfRange)).then_some(self.max_recv);
        let call = self.inner.call(req);
        Box::pin(async move {
            let resp = match deadline {
                Some(d) => match tokio::time::timeout(d.saturating_sub(AHEAD), call).await {
                    Ok(r) => r?,
                    Err(_) => {
                        return Ok(tonic::Status::deadline_exceeded(format!(
                            "deadline of {} (grpc-timeout) exceeded",
                            crate::sys::humanize(d)
                        ))
                        .into_http());
                    }
                },
                None => call.await?,
            };
            Ok(match max_recv {
                Some(max) => resource_exhausted(resp, max),
                None => resp,
            })
        })
    }
}

/// tonic's answer to an oversize request (a trailers-only OUT_OF_RANGE "decoded message length
/// too large"), as gRPC says it: RESOURCE_EXHAUSTED.
fn resource_exhausted(
    mut resp: http::Response<tonic::body::Body>,
    max_recv: usize,
) -> http::Response<tonic::body::Body> {
    let h = resp.headers();
    let out_of_range = h.get("grpc-status").is_some_and(|v| v == "11");
    let too_large = h
        .get("grpc-message")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|m| {
            m.contains("message%20length%20too%20large") || m.contains("message length too large")
        });
    if !(out_of_range && too_large) {
        return resp;
    }
    let status = tonic::Status::resource_exhausted(format!(
        "the request message is larger than the receive limit of {max_recv} bytes"
    ));
    let h = resp.headers_mut();
    h.remove("grpc-status");
    h.remove("grpc-message");
    if status.add_header(h).is_err() {
        h.insert("grpc-status", http::HeaderValue::from_static("8"));
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_as_grpc_writes_them() {
        assert_eq!(parse_timeout("1S"), Some(Duration::from_secs(1)));
        assert_eq!(parse_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(
            parse_timeout("99999999n"),
            Some(Duration::from_nanos(99_999_999))
        );
        assert_eq!(parse_timeout("2H"), Some(Duration::from_secs(7200)));
        for bad in ["", "S", "1", "123456789S", "1s", "-1S", "1.5S", "1 S"] {
            assert_eq!(parse_timeout(bad), None, "{bad}");
        }
    }

    #[test]
    fn oversize_answers_become_resource_exhausted() {
        let resp: http::Response<tonic::body::Body> = tonic::Status::out_of_range(
            "Error, decoded message length too large: found 16778240 bytes, the limit is: 16777216 bytes",
        )
        .into_http();
        let fixed = resource_exhausted(resp, 16 << 20);
        let s = tonic::Status::from_header_map(fixed.headers()).expect("a status");
        assert_eq!(s.code(), tonic::Code::ResourceExhausted);
        assert!(s.message().contains("16777216"), "{}", s.message());
        // Any other OUT_OF_RANGE is the handler's and stays.
        let other: http::Response<tonic::body::Body> =
            tonic::Status::out_of_range("index 9 past the end").into_http();
        let kept = resource_exhausted(other, 16 << 20);
        let s = tonic::Status::from_header_map(kept.headers()).expect("a status");
        assert_eq!(s.code(), tonic::Code::OutOfRange);
    }
}
