//! RPC over UDP, wire-compatible with Python rpcudp 5.x.
//!
//! The protocol core is sans-IO: [`Endpoint`] frames outgoing datagrams,
//! classifies incoming ones after validating them completely ([`wire::parse`]),
//! and keeps outstanding calls on a timing wheel driven by `now` arguments.
//! [`socket`] drives it with tokio; [`EventBuf`] is the byte log the driver
//! hands to its consumer. See docs/DESIGN.md.

pub mod address;
pub mod batch_io;
mod driver;
pub mod endpoint;
pub mod error;
pub mod events;
mod handoff;
pub mod limits;
mod msgpack;
mod queue;
pub mod reflection;
mod runtime;
mod sampling;
pub mod socket;
pub mod source_table;
pub mod stats;
mod sync;
mod table;
mod udp;
pub mod validate;
pub mod value;
mod wheel;
pub mod wire;

pub use endpoint::{Config, Endpoint, Incoming, Token};
pub use error::Error;
pub use events::{Event, EventBuf, EventIter};
pub use queue::{EventQueue, Wake};
pub use stats::{DropReason, Stats};
pub use udp::SocketOptions;
pub use validate::validate;
pub use wire::{frame, parse, Kind, Message, MsgId};
