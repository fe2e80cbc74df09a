//! The wire protocols behind CRI `Exec`, `Attach` and `PortForward` streaming, shared by
//! cricket's runtime (the server side) and its suite (the client side), so both speak the
//! bytes Kubernetes peers speak and a failure can say which frame or header was wrong.
//!
//! - [`spdy`]: SPDY/3.1 framing, header compression and an async session for either role.
//! - [`remotecommand`]: protocol names, negotiation, the status JSON, resize events and
//!   WebSocket channel framing.
//! - [`portforward`]: port-forward stream headers and request pairing.

#[doc(hidden)]
pub mod fuzzing;
pub mod portforward;
pub mod remotecommand;
pub mod spdy;
