//! rmp-serde helpers for Rust programs that use the core directly. Everything
//! is encoded compactly (structs and tuples as arrays), as Python's umsgpack
//! and the JavaScript codec expect.

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::wire;

/// Encodes a request body `[name, args]`. `args` must serialize as a
/// sequence (a tuple or a `Vec`), which the callee spreads into arguments;
/// anything else, `()` included (rmp-serde writes it as nil), is refused
/// here, since every peer would drop the request.
pub fn encode_request<A: Serialize>(name: &str, args: &A) -> Result<Vec<u8>, Error> {
    let body = encode_value(&(name, args))?;
    if wire::request_name(&body).is_none() {
        return Err(Error::Encode(
            "request args must serialize as a sequence (tuple or Vec)".into(),
        ));
    }
    Ok(body)
}

pub fn encode_value<T: Serialize>(v: &T) -> Result<Vec<u8>, Error> {
    rmp_serde::to_vec(v).map_err(|e| Error::Encode(e.to_string()))
}

pub fn decode_value<'de, T: Deserialize<'de>>(bytes: &'de [u8]) -> Result<T, Error> {
    rmp_serde::from_slice(bytes).map_err(|e| Error::Decode(e.to_string()))
}
