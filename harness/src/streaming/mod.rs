//! The client side of CRI streaming, usable against any runtime: the HTTP/1.1 upgrade to
//! SPDY/3.1 or WebSocket on the URL an Exec, Attach or PortForward RPC returned, then
//! remotecommand (stdin, stdout, stderr, resize, the exit status) or port-forward streams on
//! top. Every failure says which step, header or frame was at fault, so a case can show it.

mod portforward;
mod remote;
mod upgrade;

pub use portforward::{ForwardedConn, PortForwardSession, WsPortOutcome, websocket_exchange};
pub use remote::{Output, RemoteCommand, StdioWanted, Transport};
pub use upgrade::{UpgradeError, Url, discard};
