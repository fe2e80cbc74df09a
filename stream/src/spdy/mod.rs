//! SPDY/3.1 as spoken by Kubernetes streaming (moby/spdystream on the Go side).
//!
//! ```
//! use cricket_stream::spdy::{Headers, Session, SessionOptions};
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let (client_io, server_io) = tokio::io::duplex(64 << 10);
//! let (_server, mut incoming) = Session::server(server_io, SessionOptions::default());
//! tokio::spawn(async move {
//!     while let Some(pending) = incoming.recv().await {
//!         // Reply at once: client-go waits for each reply before opening the next stream.
//!         let mut stream = pending.accept();
//!         tokio::spawn(async move {
//!             let (mut rx, mut tx) = stream.into_split();
//!             let _ = tokio::io::copy(&mut rx, &mut tx).await; // echo until FIN
//!             let _ = tx.shutdown().await;
//!         });
//!     }
//! });
//!
//! let client = Session::client(client_io, SessionOptions::default());
//! let mut stream = client.open_stream(Headers::from([("streamtype", "stdin")])).await?;
//! stream.write_all(b"hello").await?;
//! stream.close()?;
//! let mut echoed = Vec::new();
//! stream.read_to_end(&mut echoed).await?;
//! assert_eq!(echoed, b"hello");
//! client.close().await;
//! # Ok(())
//! # }
//! ```

pub mod codes;
mod conn;
pub mod dictionary;
pub mod frame;
pub mod headers;
mod session;
mod state;
mod stream;
mod tasks;

pub use codes::{GoAwayStatus, RstStatus, Setting};
pub use frame::{EncodeError, Frame, FrameDecoder, FrameEncoder, FrameError};
pub use headers::{HeaderError, Headers};
pub use session::{Incoming, IncomingStream, Role, Session, SessionError, SessionOptions};
pub use stream::{Stream, StreamReader, StreamWriter};
