//! The streaming server behind Exec, Attach and PortForward: the RPC validates the request,
//! caches it under a single-use token and answers `http://<address>/<route>/<token>`; the
//! client then connects there and upgrades to SPDY/3.1 (remotecommand v1–v4, or
//! `portforward.k8s.io`) or WebSocket (`v5`/`v4`/base64/plain channel protocols), as the
//! Kubernetes streaming server serves them. The wire protocols are `cricket-stream`'s; this
//! module is the HTTP side, the routing, and the glue to processes and pods.

mod attach;
mod portforward;
mod remotecommand;
mod spdy;
mod tokens;
mod ws;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cricket_proto::v1 as cri;
use cricket_stream::remotecommand::{
    self as rc, HEADER_ACCEPTED_PROTOCOL_VERSIONS, HEADER_PROTOCOL_VERSION,
};
use cricket_stream::spdy::{Session, SessionOptions};
use http_body_util::Full;
use hyper::body::Incoming as Body;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tonic::Status;

use crate::engine::Engine;
use crate::fault::Fault;
use tokens::{IssueError, Pending, Tokens};

pub use portforward::validate as validate_port_forward;

type Resp = Response<Full<Bytes>>;

/// The running streaming server.
pub struct StreamServer {
    base: String,
    tokens: Tokens,
    engine: Arc<Engine>,
    idle: Duration,
}

impl StreamServer {
    /// Binds `addr` (port 0 picks one) and serves until the process ends.
    pub async fn start(
        addr: SocketAddr,
        engine: Arc<Engine>,
        idle: Duration,
    ) -> std::io::Result<Arc<Self>> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let reusable = engine.faults.has(Fault::StreamTokenReusable);
        let prefix = engine.faults.has(Fault::StreamTokenPrefix);
        let server = Arc::new(Self {
            base: format!("http://{local}"),
            tokens: Tokens::new(reusable, prefix),
            engine,
            idle,
        });
        let s = server.clone();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let _ = tcp.set_nodelay(true);
                let s = s.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        let s = s.clone();
                        async move { Ok::<_, Infallible>(s.handle(req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), svc)
                        .with_upgrades()
                        .await;
                });
            }
        });
        tracing::info!(address = %local, "streaming server listening");
        Ok(server)
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    fn issue(&self, p: Pending) -> Result<String, Status> {
        let route = p.route();
        match self.tokens.issue(p) {
            Ok(t) => Ok(format!("{}/{route}/{t}", self.base)),
            Err(IssueError::Full) => Err(Status::resource_exhausted(
                "maximum number of in-flight requests exceeded",
            )),
            Err(IssueError::Random(e)) => Err(Status::internal(format!("no random token: {e}"))),
        }
    }

    /// ExecRequest checks (api.proto and the Kubernetes server's messages), then its URL.
    pub fn exec(&self, req: cri::ExecRequest) -> Result<String, Status> {
        if req.container_id.is_empty() {
            return Err(Status::invalid_argument("missing required container_id"));
        }
        if req.cmd.is_empty() {
            return Err(Status::invalid_argument("ExecRequest.cmd is required"));
        }
        stdio_rules(req.tty, req.stdin, req.stdout, req.stderr, "or")?;
        self.running(&req.container_id)?;
        self.issue(Pending::Exec(req))
    }

    /// AttachRequest checks: the container's own config decides tty and stdin.
    pub fn attach(&self, req: cri::AttachRequest) -> Result<String, Status> {
        if req.container_id.is_empty() {
            return Err(Status::invalid_argument("missing required container_id"));
        }
        stdio_rules(req.tty, req.stdin, req.stdout, req.stderr, "and")?;
        let (tty, stdin) = self.running(&req.container_id)?;
        if self.engine.faults.has(Fault::AttachIgnoresConfig) {
            return self.issue(Pending::Attach(req));
        }
        if req.tty != tty {
            return Err(Status::invalid_argument(format!(
                "AttachRequest.tty is {} but container {} was created with tty {}",
                req.tty, req.container_id, tty
            )));
        }
        if req.stdin && !stdin {
            return Err(Status::invalid_argument(format!(
                "AttachRequest.stdin: container {} was created without stdin",
                req.container_id
            )));
        }
        self.issue(Pending::Attach(req))
    }

    pub fn port_forward(&self, req: cri::PortForwardRequest) -> Result<String, Status> {
        portforward::validate(&self.engine, &req)?;
        self.issue(Pending::PortForward(req))
    }

    /// The container must exist (NotFound) and run (FailedPrecondition); returns its tty
    /// and stdin settings.
    fn running(&self, id: &str) -> Result<(bool, bool), Status> {
        let t = self.engine.tables();
        let c = t
            .ctrs
            .get(id)
            .ok_or_else(|| Status::not_found(format!("container {id} not found")))?;
        if c.rec.state != crate::state::CtrState::Running || !crate::sys::alive(c.rec.pid) {
            return Err(Status::failed_precondition(format!(
                "container {id} is not running"
            )));
        }
        Ok((c.config.tty, c.config.stdin))
    }

    async fn handle(self: Arc<Self>, req: Request<Body>) -> Resp {
        if req.method() != hyper::Method::GET && req.method() != hyper::Method::POST {
            return text(StatusCode::METHOD_NOT_ALLOWED, "405 method not allowed\n");
        }
        let path = req.uri().path().to_string();
        let mut parts = path.trim_start_matches('/').splitn(2, '/');
        let (Some(route), Some(token)) = (parts.next(), parts.next()) else {
            return not_found();
        };
        let Some(pending) = self.tokens.consume(route, token) else {
            return not_found();
        };
        let is_ws =
            header_has(&req, "upgrade", "websocket") && header_has(&req, "connection", "upgrade");
        if is_ws {
            self.websocket(req, pending)
        } else {
            self.spdy(req, pending)
        }
    }

    fn spdy(self: Arc<Self>, mut req: Request<Body>, pending: Pending) -> Resp {
        let lines: Vec<String> = req
            .headers()
            .get_all(HEADER_PROTOCOL_VERSION)
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_string))
            .collect();
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        let server: &[&str] = match pending {
            Pending::PortForward(_) => &rc::PORT_FORWARD_PROTOCOLS,
            _ => &rc::SPDY_SERVER_PROTOCOLS,
        };
        let chosen = match rc::negotiate(&refs, req.headers().keys_len(), server) {
            Ok(c) => c.to_string(),
            Err(e) => {
                let mut r = text(
                    StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::BAD_REQUEST),
                    &e.body(),
                );
                for p in e.accepted_protocols() {
                    if let Ok(v) = p.parse() {
                        r.headers_mut().append(HEADER_ACCEPTED_PROTOCOL_VERSIONS, v);
                    }
                }
                return r;
            }
        };
        if !(header_has(&req, "connection", "upgrade") && header_has(&req, "upgrade", "spdy/3.1")) {
            return text(
                StatusCode::BAD_REQUEST,
                "unable to upgrade: missing upgrade headers in request\n",
            );
        }
        let upgrade = hyper::upgrade::on(&mut req);
        let this = self.clone();
        let proto = chosen.clone();
        tokio::spawn(async move {
            let Ok(io) = upgrade.await else { return };
            let opts = SessionOptions {
                idle_timeout: Some(this.idle),
                ..SessionOptions::default()
            };
            let (session, mut incoming) = Session::server(TokioIo::new(io), opts);
            match pending {
                Pending::PortForward(r) => {
                    spdy::port_forward(this.engine.clone(), r, incoming).await;
                }
                Pending::Exec(r) => {
                    let want = (r.stdin, r.stdout, r.stderr, r.tty);
                    let version = spdy::version_of(&proto);
                    match spdy::remotecommand_streams(&session, &mut incoming, version, want).await
                    {
                        Ok(o) => {
                            let style = ws::style_of(&proto);
                            remotecommand::exec(this.engine.clone(), r, o.streams, style).await;
                            drop(o.unused);
                        }
                        Err(e) => tracing::warn!(error = %e, "exec session without its streams"),
                    }
                }
                Pending::Attach(r) => {
                    let want = (r.stdin, r.stdout, r.stderr, r.tty);
                    let version = spdy::version_of(&proto);
                    match spdy::remotecommand_streams(&session, &mut incoming, version, want).await
                    {
                        Ok(o) => {
                            let style = ws::style_of(&proto);
                            attach::attach(this.engine.clone(), r, o.streams, style).await;
                            drop(o.unused);
                        }
                        Err(e) => tracing::warn!(error = %e, "attach session without its streams"),
                    }
                }
            }
            session.goaway();
            session.close().await;
        });
        let mut r = switching("SPDY/3.1");
        let h = r.headers_mut();
        if let Ok(v) = chosen.parse() {
            h.insert(HEADER_PROTOCOL_VERSION, v);
        }
        r
    }

    fn websocket(self: Arc<Self>, mut req: Request<Body>, pending: Pending) -> Resp {
        let first = req
            .headers()
            .get("sec-websocket-protocol")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let table: &[&str] = match pending {
            Pending::PortForward(_) => &rc::WS_PORT_FORWARD_PROTOCOLS,
            _ => &rc::WS_SERVER_PROTOCOLS,
        };
        let Some(chosen) = rc::negotiate_ws(first.as_deref(), table) else {
            return text(StatusCode::FORBIDDEN, "");
        };
        let Some(key) = req
            .headers()
            .get("sec-websocket-key")
            .map(|k| k.as_bytes().to_vec())
        else {
            return text(StatusCode::BAD_REQUEST, "missing Sec-WebSocket-Key\n");
        };
        let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(&key);
        let upgrade = hyper::upgrade::on(&mut req);
        let this = self.clone();
        let proto = chosen.to_string();
        tokio::spawn(async move {
            let Ok(io) = upgrade.await else { return };
            let io = TokioIo::new(io);
            match pending {
                Pending::Exec(r) => {
                    let framing = ws::framing_of(&proto, &this.engine.faults);
                    let want = (r.stdin, r.stdout, r.stderr, r.tty);
                    let (streams, done) =
                        ws::remotecommand_streams(io, framing, want, Some(this.idle)).await;
                    remotecommand::exec(this.engine.clone(), r, streams, ws::style_of(&proto))
                        .await;
                    let _ = done.await;
                }
                Pending::Attach(r) => {
                    let want = (r.stdin, r.stdout, r.stderr, r.tty);
                    let (streams, done) =
                        ws::remotecommand_streams(io, &proto, want, Some(this.idle)).await;
                    attach::attach(this.engine.clone(), r, streams, ws::style_of(&proto)).await;
                    let _ = done.await;
                }
                Pending::PortForward(r) => {
                    ws_port_forward(this.engine.clone(), io, &proto, r, this.idle).await
                }
            }
        });
        let mut r = switching("websocket");
        let h = r.headers_mut();
        if let Ok(v) = accept.parse() {
            h.insert("sec-websocket-accept", v);
        }
        if !chosen.is_empty()
            && let Ok(v) = chosen.parse()
        {
            h.insert("sec-websocket-protocol", v);
        }
        r
    }
}

/// `101 Switching Protocols` to `upgrade`; the caller adds the protocol's own headers.
fn switching(upgrade: &'static str) -> Resp {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(
        "connection",
        hyper::header::HeaderValue::from_static("Upgrade"),
    );
    h.insert("upgrade", hyper::header::HeaderValue::from_static(upgrade));
    r
}

/// Port-forward over WebSocket: the request's ports, channel 2i data and 2i+1 error each,
/// each port once, the port number first on both channels.
async fn ws_port_forward<IO>(
    engine: Arc<Engine>,
    io: IO,
    protocol: &str,
    req: cri::PortForwardRequest,
    idle: Duration,
) where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    use cricket_stream::remotecommand::websocket as wsc;
    let ports: Vec<u16> = req
        .port
        .iter()
        .filter_map(|p| u16::try_from(*p).ok())
        .collect();
    let mut ins = Vec::new();
    let mut outs = Vec::new();
    let mut preamble = Vec::new();
    for (i, p) in ports.iter().enumerate() {
        let Some((data, error)) = wsc::port_forward_channels(i) else {
            break;
        };
        ins.push(data);
        outs.push(data);
        outs.push(error);
        if !engine.faults.has(crate::fault::Fault::WsNoPortPrefix) {
            preamble.push((data, wsc::port_prefix(*p).to_vec()));
            preamble.push((error, wsc::port_prefix(*p).to_vec()));
        }
    }
    let channels = u8::try_from(outs.len()).unwrap_or(u8::MAX);
    let layout = ws::Layout {
        channels,
        inputs: &ins,
        outputs: &outs,
        greet: None,
        preamble,
    };
    let mut ch = ws::open(io, protocol, layout, Some(idle)).await;
    let mut tasks = Vec::new();
    for (i, p) in ports.iter().enumerate() {
        let Some((data, error)) = wsc::port_forward_channels(i) else {
            break;
        };
        let (Some(from), Some(to), Some(mut err)) = (
            ch.take_input(data),
            ch.take_output(data),
            ch.take_output(error),
        ) else {
            continue;
        };
        let engine = engine.clone();
        let pod = req.pod_sandbox_id.clone();
        let port = *p;
        tasks.push(tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            if let Err(e) = portforward::forward(&engine, &pod, port, from, to).await {
                let m = cricket_stream::portforward::forward_error_message(port, &pod, "", &e);
                let _ = err.write_all(m.as_bytes()).await;
            }
            let _ = err.shutdown().await;
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    drop(ch.outputs);
    let _ = ch.done.await;
}

/// api.proto / the Kubernetes server: a terminal merges stderr into stdout, and a session
/// with no stream at all has nothing to do.
fn stdio_rules(
    tty: bool,
    stdin: bool,
    stdout: bool,
    stderr: bool,
    word: &str,
) -> Result<(), Status> {
    if tty && stderr {
        return Err(Status::invalid_argument(
            "tty and stderr cannot both be true",
        ));
    }
    if !stdin && !stdout && !stderr {
        return Err(Status::invalid_argument(format!(
            "one of stdin, stdout, {word} stderr must be set"
        )));
    }
    Ok(())
}

fn header_has(req: &Request<Body>, name: &str, needle: &str) -> bool {
    req.headers().get_all(name).iter().any(|v| {
        v.to_str()
            .is_ok_and(|s| s.to_ascii_lowercase().contains(needle))
    })
}

fn text(status: StatusCode, body: &str) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    if !body.is_empty() {
        r.headers_mut().insert(
            "content-type",
            hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
        );
    }
    r
}

fn not_found() -> Resp {
    text(StatusCode::NOT_FOUND, "404 page not found\n")
}
