//! rmp-serde helpers for Rust programs that use the core directly. Everything
//! is encoded compactly (structs and tuples as arrays), as Python's umsgpack
//! and the JavaScript codec expect.

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// Encodes a request body `[name, args]`; `args` should serialize as a
/// sequence (a tuple or a `Vec`), which the callee spreads into arguments.
pub fn encode_request<A: Serialize>(name: &str, args: &A) -> Result<Vec<u8>, Error> {
    encode_value(&(name, args))
}

pub fn encode_value<T: Serialize>(v: &T) -> Result<Vec<u8>, Error> {
    rmp_serde::to_vec(v).map_err(|e| Error::Encode(e.to_string()))
}

pub fn decode_value<'de, T: Deserialize<'de>>(bytes: &'de [u8]) -> Result<T, Error> {
    rmp_serde::from_slice(bytes).map_err(|e| Error::Decode(e.to_string()))
}
