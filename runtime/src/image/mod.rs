//! Images: references, the store, pulling and safe unpacking.

pub mod pull;
pub mod reference;
pub mod store;
pub mod unpack;
