//! The timed CRI client every suite talks through. Each call carries a deadline (sent to the
//! server as `grpc-timeout` and enforced here too, so a runtime that never answers cannot hang
//! a run), and reports method, duration and gRPC code to a [`Recorder`].

use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cricket_proto::v1 as cri;
use cricket_proto::{ImageServiceClient, MAX_MESSAGE_SIZE, RuntimeServiceClient};
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

use crate::record::Recorder;

/// Connects to a CRI endpoint URI (`unix:///path`, or `http://host:port`). The connection is
/// made lazily per call after a first successful connect, so a restarted runtime is picked up.
pub async fn connect(uri: &str, timeout: Duration) -> Result<Channel, String> {
    let uri = normalize_endpoint(uri)?;
    if let Some(path) = uri.strip_prefix("unix://")
        && !std::path::Path::new(path).exists()
    {
        return Err(format!("socket {path} does not exist"));
    }
    let ep = Endpoint::from_shared(uri.clone())
        .map_err(|e| format!("bad endpoint {uri}: {e}"))?
        .connect_timeout(timeout)
        .timeout(Duration::from_secs(600));
    ep.connect().await.map_err(|e| {
        let mut msg = e.to_string();
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            msg.push_str(": ");
            msg.push_str(&s.to_string());
            src = s.source();
        }
        msg
    })
}

/// Accepts what crictl accepts (`unix:///path`, `unix:path`, a bare socket path) and
/// `http(s)://`; refuses the rest with a message naming the value.
pub fn normalize_endpoint(uri: &str) -> Result<String, String> {
    crate::target::discover::normalize(uri)
}

/// Both CRI services, timed. Cheap to clone.
#[derive(Clone)]
pub struct CriClient {
    runtime: RuntimeServiceClient<Channel>,
    image: ImageServiceClient<Channel>,
    /// The runtime connection itself, for calls outside the generated API.
    runtime_channel: Channel,
    deadline: Duration,
    recorder: Arc<Recorder>,
}

impl CriClient {
    pub fn new(
        runtime: Channel,
        image: Channel,
        deadline: Duration,
        recorder: Arc<Recorder>,
    ) -> Self {
        Self {
            runtime_channel: runtime.clone(),
            runtime: RuntimeServiceClient::new(runtime)
                .max_decoding_message_size(MAX_MESSAGE_SIZE)
                .max_encoding_message_size(MAX_MESSAGE_SIZE),
            image: ImageServiceClient::new(image)
                .max_decoding_message_size(MAX_MESSAGE_SIZE)
                .max_encoding_message_size(MAX_MESSAGE_SIZE),
            deadline,
            recorder,
        }
    }

    /// The same connection with another per-call deadline.
    pub fn with_deadline(&self, deadline: Duration) -> Self {
        Self {
            deadline,
            ..self.clone()
        }
    }

    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    pub fn recorder(&self) -> &Arc<Recorder> {
        &self.recorder
    }

    async fn timed<Q, R, F, Fut>(&self, method: &'static str, req: Q, call: F) -> Result<R, Status>
    where
        Q: Debug,
        F: FnOnce(tonic::Request<Q>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<R>, Status>>,
    {
        self.recorder.request(method, &req);
        let mut request = tonic::Request::new(req);
        request.set_timeout(self.deadline);
        let start = Instant::now();
        // The server should honour grpc-timeout; this bound holds even when it does not.
        let answer =
            tokio::time::timeout(self.deadline + Duration::from_millis(250), call(request)).await;
        let elapsed = start.elapsed();
        let result = match answer {
            // tonic reports its own expiry of the request deadline as Cancelled("Timeout
            // expired"); gRPC calls that DEADLINE_EXCEEDED, which is what cases check.
            Ok(Err(s)) if s.code() == Code::Cancelled && s.message() == "Timeout expired" => {
                Err(Status::deadline_exceeded(format!(
                    "{method}: deadline of {:?} exceeded",
                    self.deadline
                )))
            }
            Ok(r) => r.map(tonic::Response::into_inner),
            Err(_) => Err(Status::deadline_exceeded(format!(
                "{method}: no answer within the {:?} deadline",
                self.deadline
            ))),
        }
        .map_err(|mut s| {
            // A `?` on this status names the RPC in the failure's check id.
            s.metadata_mut().insert(
                crate::failure::METHOD_METADATA,
                tonic::metadata::MetadataValue::from_static(method),
            );
            s
        });
        let code = match &result {
            Ok(_) => Code::Ok,
            Err(s) => s.code(),
        };
        self.recorder.rpc(method, start, elapsed, code);
        result
    }
}

/// One timed method per RPC, from the API's single RPC list. The four calls that create or
/// remove objects are written out below instead (they also keep the cleanup list); a
/// streaming RPC returns its stream.
macro_rules! timed_method {
    (RuntimeService RunPodSandbox $($rest:tt)*) => {};
    (RuntimeService RemovePodSandbox $($rest:tt)*) => {};
    (RuntimeService CreateContainer $($rest:tt)*) => {};
    (RuntimeService RemoveContainer $($rest:tt)*) => {};
    ($svc:ident $method:ident $snake:ident unary $req:ident $resp:ident) => {
        timed_method!(@ $svc $method $snake $req cri::$resp);
    };
    ($svc:ident $method:ident $snake:ident stream $req:ident $resp:ident) => {
        timed_method!(@ $svc $method $snake $req tonic::Streaming<cri::$resp>);
    };
    (@ RuntimeService $method:ident $snake:ident $req:ident $ret:ty) => {
        timed_method!(@@ runtime RuntimeService $method $snake $req $ret);
    };
    (@ ImageService $method:ident $snake:ident $req:ident $ret:ty) => {
        timed_method!(@@ image ImageService $method $snake $req $ret);
    };
    (@@ $field:ident $svc:ident $method:ident $snake:ident $req:ident $ret:ty) => {
        #[doc = concat!("`", stringify!($svc), "/", stringify!($method), "`, timed.")]
        pub async fn $snake(&self, req: cri::$req) -> Result<$ret, Status> {
            let mut c = self.$field.clone();
            self.timed(stringify!($method), req, |r| async move { c.$snake(r).await })
                .await
        }
    };
}

macro_rules! timed_methods {
    ($($svc:ident $method:ident $snake:ident $kind:ident $req:ident $resp:ident;)+) => {
        impl CriClient {
            $(timed_method!($svc $method $snake $kind $req $resp);)+
        }
    };
}
cricket_proto::for_each_rpc!(timed_methods);

/// The four calls that create or remove objects also keep the recorder's object list, so the
/// runner can remove whatever a case left behind without the case having to register it.
impl CriClient {
    /// `RuntimeService/RunPodSandbox`, timed; the new sandbox is tracked for cleanup.
    pub async fn run_pod_sandbox(
        &self,
        req: cri::RunPodSandboxRequest,
    ) -> Result<cri::RunPodSandboxResponse, Status> {
        let mut c = self.runtime.clone();
        let resp = self
            .timed("RunPodSandbox", req, |r| async move {
                c.run_pod_sandbox(r).await
            })
            .await?;
        self.recorder.created_sandbox(&resp.pod_sandbox_id);
        Ok(resp)
    }

    /// `RuntimeService/RemovePodSandbox`, timed; a removed sandbox is no longer tracked.
    pub async fn remove_pod_sandbox(
        &self,
        req: cri::RemovePodSandboxRequest,
    ) -> Result<cri::RemovePodSandboxResponse, Status> {
        let mut c = self.runtime.clone();
        let id = req.pod_sandbox_id.clone();
        let resp = self
            .timed("RemovePodSandbox", req, |r| async move {
                c.remove_pod_sandbox(r).await
            })
            .await?;
        self.recorder.removed_sandbox(&id);
        Ok(resp)
    }

    /// `RuntimeService/CreateContainer`, timed; the new container is tracked for cleanup.
    pub async fn create_container(
        &self,
        req: cri::CreateContainerRequest,
    ) -> Result<cri::CreateContainerResponse, Status> {
        let mut c = self.runtime.clone();
        let resp = self
            .timed("CreateContainer", req, |r| async move {
                c.create_container(r).await
            })
            .await?;
        self.recorder.created_container(&resp.container_id);
        Ok(resp)
    }

    /// `RuntimeService/RemoveContainer`, timed; a removed container is no longer tracked.
    pub async fn remove_container(
        &self,
        req: cri::RemoveContainerRequest,
    ) -> Result<cri::RemoveContainerResponse, Status> {
        let mut c = self.runtime.clone();
        let id = req.container_id.clone();
        let resp = self
            .timed("RemoveContainer", req, |r| async move {
                c.remove_container(r).await
            })
            .await?;
        self.recorder.removed_container(&id);
        Ok(resp)
    }

    /// Calls a method by full gRPC path with an empty request body, for checking how a target
    /// answers methods it does not know. Returns the status (`Ok` when the call succeeded).
    pub async fn call_raw_unary(&self, path: &'static str) -> Status {
        let channel = self.runtime_channel.clone();
        let outcome = self
            .timed(path, cri::VersionRequest::default(), |req| async move {
                let mut grpc = tonic::client::Grpc::new(channel);
                grpc.ready()
                    .await
                    .map_err(|e| Status::unavailable(e.to_string()))?;
                let codec =
                    tonic_prost::ProstCodec::<cri::VersionRequest, cri::VersionResponse>::default();
                let path = tonic::codegen::http::uri::PathAndQuery::from_static(path);
                grpc.unary(req, path, codec).await
            })
            .await;
        match outcome {
            Ok(_) => Status::ok(""),
            Err(s) => s,
        }
    }
}

/// A codec that sends bytes as they are and keeps the reply undecoded: for requests that are
/// not valid protobuf at all.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawCodec;

pub struct RawEncoder;
pub struct RawDecoder;

impl tonic::codec::Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = Status;

    fn encode(
        &mut self,
        item: Vec<u8>,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), Status> {
        use bytes_buf::BufMut;
        dst.put_slice(&item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawDecoder {
    type Item = Vec<u8>;
    type Error = Status;

    fn decode(&mut self, src: &mut tonic::codec::DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        use bytes_buf::Buf;
        let mut v = vec![0u8; src.remaining()];
        src.copy_to_slice(&mut v);
        Ok(Some(v))
    }
}

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;

    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }

    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

mod bytes_buf {
    pub use prost::bytes::{Buf, BufMut};
}

impl CriClient {
    /// Sends `body` (arbitrary bytes, not necessarily protobuf) to the method at `path`, unary
    /// or server-streaming alike, and returns the status (`Ok` when the call succeeded).
    pub async fn call_raw_bytes(
        &self,
        path: &'static str,
        body: Vec<u8>,
        streaming: bool,
    ) -> Status {
        let channel = self.runtime_channel.clone();
        let outcome = self
            .timed(path, RawBody(body.len()), |req| async move {
                let mut grpc = tonic::client::Grpc::new(channel);
                grpc.ready()
                    .await
                    .map_err(|e| Status::unavailable(e.to_string()))?;
                let p = tonic::codegen::http::uri::PathAndQuery::from_static(path);
                let req = tonic::Request::from_parts(
                    req.metadata().clone(),
                    req.extensions().clone(),
                    body,
                );
                if streaming {
                    let resp = grpc.server_streaming(req, p, RawCodec).await?;
                    let mut s = resp.into_inner();
                    while s.message().await?.is_some() {}
                    Ok(tonic::Response::new(()))
                } else {
                    grpc.unary(req, p, RawCodec).await.map(|r| r.map(drop))
                }
            })
            .await;
        match outcome {
            Ok(()) => Status::ok(""),
            Err(s) => s,
        }
    }
}

/// How a raw request shows up in failure reports.
#[derive(Debug)]
struct RawBody(#[allow(dead_code)] usize);
