//! Images: references, the store, pulling and safe unpacking.

pub mod protocol;
pub mod pull;
pub mod reference;
mod session;
pub mod store;
pub mod unpack;
