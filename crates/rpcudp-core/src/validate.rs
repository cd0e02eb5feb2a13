//! Structural validation of untrusted msgpack, before anything decodes it.
//!
//! The walk is iterative over a fixed stack of element counters, allocates
//! nothing, and checks every declared length against the bytes actually
//! present, so a datagram can neither recurse us into a stack overflow nor make
//! us reserve memory for elements it does not carry.

use crate::msgpack::{self, Head};
use crate::stats::DropReason;

/// Hard ceiling on `max_depth`: the size of the counter stack (8 bytes a level).
/// Larger `max_depth` values are clamped to it.
pub const DEPTH_LIMIT: usize = 128;

/// Checks that `buf` holds exactly one msgpack value with containers nested at
/// most `max_depth` deep (a top-level array is depth 1), only UTF-8 strs and no
/// ext types.
pub fn validate(buf: &[u8], max_depth: usize) -> Result<(), DropReason> {
    let max_depth = max_depth.min(DEPTH_LIMIT);
    // open[i] = elements still expected by the container open at depth i + 1.
    let mut open = [0usize; DEPTH_LIMIT];
    let mut depth = 0;
    let mut pos = 0;
    loop {
        let (head, next) = msgpack::head(buf, pos).ok_or(DropReason::Malformed)?;
        pos = next;
        let remaining = buf.len() - pos;
        let elements = match head {
            Head::Opaque(n) | Head::Str(n) if n > remaining => return Err(DropReason::Malformed),
            Head::Opaque(n) => {
                pos += n;
                0
            }
            Head::Str(n) => {
                std::str::from_utf8(&buf[pos..pos + n]).map_err(|_| DropReason::BadUtf8)?;
                pos += n;
                0
            }
            Head::Array(n) => container(n, remaining, depth, max_depth)?,
            Head::Map(pairs) => {
                let n = pairs.checked_mul(2).ok_or(DropReason::Malformed)?;
                container(n, remaining, depth, max_depth)?
            }
            Head::Ext => return Err(DropReason::UnsupportedType),
            Head::Reserved => return Err(DropReason::Malformed),
        };
        if elements > 0 {
            open[depth] = elements;
            depth += 1;
            continue;
        }
        // One value is complete: close every container it completes.
        loop {
            let Some(top) = depth.checked_sub(1) else {
                return if pos == buf.len() {
                    Ok(())
                } else {
                    Err(DropReason::Malformed)
                };
            };
            open[top] -= 1;
            if open[top] > 0 {
                break;
            }
            depth = top;
        }
    }
}

/// Checks a container header declaring `elements` elements, opened at `depth`.
fn container(elements: usize, remaining: usize, depth: usize, max_depth: usize) -> Result<usize, DropReason> {
    // Every element takes at least one byte, so a count the rest of the buffer
    // cannot hold is a lie we can reject before walking it.
    if elements > remaining {
        return Err(DropReason::Malformed);
    }
    if depth == max_depth {
        return Err(DropReason::TooDeep);
    }
    Ok(elements)
}
