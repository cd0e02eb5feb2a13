//! napi-rs binding of rpcudp-core: translation only. Events reach JavaScript a
//! whole batch per call: from libuv's poll on the JavaScript thread
//! (`io: "loop"`, see loop_io.rs), or through a threadsafe function from the
//! runtime thread (`io: "thread"`, see deliver.rs), which on the loop carries
//! only timeouts. Sends are the same in both modes: a lone datagram leaves at
//! once from the JavaScript thread, and under load datagrams are handed to the
//! runtime thread, which JavaScript's `commit()` at the end of each event-loop
//! turn wakes once for all of them, whatever the number of sockets (turn.rs).
//!
//! No entry point lets a panic unwind into the host (`catch_unwind` on every
//! method, `no_unwind` in raw callbacks), and every error reaches JavaScript
//! with a `code` from `errorCodes()`.
#![deny(clippy::all)]

mod deliver;
mod env_sockets;
mod errors;
#[cfg(unix)]
mod loop_io;
mod turn;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use napi::bindgen_prelude::*;
use napi::JsValue;
use napi_derive::napi;
use rpcudp_core::address;
use rpcudp_core::endpoint::Config;
use rpcudp_core::limits::RateConfig;
use rpcudp_core::reflection::ReflectionConfig;
use rpcudp_core::socket::Socket;
use rpcudp_core::stats::DropReason;
use rpcudp_core::wire::{MsgId, ID_LEN};
use rpcudp_core::{Error as CoreError, SocketOptions};

use crate::deliver::{Deliver, JsWaker};
use crate::errors::{invalid, throw};

/// The drop reasons, camelCase, in the order of the `reason` byte of a
/// `dropped` event (and the keys of `stats().dropped`).
#[napi]
pub fn drop_reasons() -> Vec<String> {
    DropReason::ALL.iter().map(|r| r.js_name()).collect()
}

/// Every `code` an error thrown by this binding can carry.
#[napi]
pub fn error_codes() -> Vec<String> {
    CoreError::CODES.iter().map(|c| c.to_string()).collect()
}

#[napi(object)]
pub struct BindOptions {
    pub max_body: u32,
    pub max_outstanding: u32,
    pub check_sender: bool,
    pub recv_buffer: u32,
    pub send_buffer: u32,
    /// "loop": receive on Node's event loop; "thread": on the runtime thread.
    pub io: String,
    /// Per-source token bucket on incoming requests (all three, or none: no limit).
    pub rate_per_second: Option<f64>,
    pub rate_burst: Option<f64>,
    pub max_sources: Option<u32>,
    /// The reflection bound on replies to unverified sources (all three, or none: no bound).
    pub reflection_allowance: Option<f64>,
    pub reflection_factor: Option<f64>,
    pub reflection_max_sources: Option<u32>,
}

#[napi(object)]
pub struct BoundAddress {
    pub host: String,
    pub port: u32,
}

#[napi(object)]
pub struct NativeStats {
    pub requests_sent: f64,
    pub requests_received: f64,
    pub responses_sent: f64,
    pub responses_received: f64,
    pub errors_sent: f64,
    pub errors_received: f64,
    pub timeouts: f64,
    pub outstanding: f64,
    /// Keyed by the names `dropReasons()` lists.
    pub dropped: HashMap<String, f64>,
    pub recv_buffer_size: f64,
    pub send_buffer_size: f64,
    /// Heap bytes of the core's outstanding-call table (not in the JS heap; for benchmarks).
    pub table_bytes: f64,
    /// Sources the per-source rate limit tracks (bounded by maxSources).
    pub sources_tracked: f64,
    /// Sources the reflection bound tracks (bounded by its maxSources).
    pub reflection_sources: f64,
}

/// A bound socket, as this JavaScript object sees it; `id` names it in the
/// environment's registry (and the loop's receivers), which close it on teardown.
struct Bound {
    id: u64,
    socket: Arc<Socket>,
    deliver: Arc<Deliver>,
    on_loop: bool,
}

#[napi]
#[derive(Default)]
pub struct NativeSocket {
    bound: Option<Bound>,
    referenced: bool,
}

// Ports and lengths arrive as f64: napi's u32 conversion would wrap 2^40 to 0.

fn addr(host: &str, port: f64) -> std::result::Result<SocketAddr, CoreError> {
    if !(0.0..=65535.0).contains(&port) || port.fract() != 0.0 {
        return Err(CoreError::InvalidAddress(format!("port {port}")));
    }
    address::parse(host, port as u16)
}

/// Ends an event-loop turn: wakes the runtime thread for everything handed to
/// it since the last commit (datagrams, deadlines earlier than a driver's),
/// once, whatever the number of sockets.
#[napi(catch_unwind)]
pub fn commit() {
    turn::end();
    rpcudp_core::socket::commit();
}

/// The name of the interface with this index (a sender's IPv6 scope id in an event batch), or the number.
#[napi]
pub fn interface_name(index: u32) -> String {
    address::zone(index)
}

/// The first `len` bytes of a reusable JavaScript encode buffer.
fn prefix(body: &[u8], len: f64) -> std::result::Result<&[u8], CoreError> {
    (len >= 0.0 && len.fract() == 0.0 && len <= body.len() as f64)
        .then(|| &body[..len as usize])
        .ok_or_else(|| invalid(format!("len {len} is not within the body")))
}

fn msg_id(id: &[u8]) -> std::result::Result<MsgId, CoreError> {
    id.try_into()
        .map_err(|_| invalid(format!("message id must be {ID_LEN} bytes")))
}

/// Any number of milliseconds JavaScript can pass: negative waits nothing,
/// NaN and durations past `Duration::MAX` are errors (TypeScript validates
/// first; this only keeps the process up whatever arrives).
fn timeout(ms: f64) -> std::result::Result<Duration, CoreError> {
    if ms.is_nan() {
        return Err(invalid("timeout NaN ms"));
    }
    Duration::try_from_secs_f64(ms.max(0.0) / 1000.0).map_err(|_| invalid(format!("timeout {ms} ms")))
}

#[napi]
impl NativeSocket {
    #[napi(constructor, catch_unwind)]
    pub fn new() -> Self {
        NativeSocket::default()
    }

    /// Binds and starts receiving; `onEvents(batch, length)` gets every batch of events (format in
    /// docs/DESIGN.md) in its first `length` bytes (all of it when `length` is absent). The buffer
    /// may be reused for the next batch: read it before returning.
    #[napi(catch_unwind)]
    pub fn bind(
        &mut self,
        env: Env,
        host: String,
        port: f64,
        options: BindOptions,
        #[napi(ts_arg_type = "(batch: Buffer, length?: number) => void")] on_events: Function<Buffer, ()>,
    ) -> Result<BoundAddress> {
        self.bind_inner(&env, host, port, options, on_events)
            .map_err(|e| throw(&env, e))
    }

    fn bind_inner(
        &mut self,
        env: &Env,
        host: String,
        port: f64,
        options: BindOptions,
        on_events: Function<Buffer, ()>,
    ) -> std::result::Result<BoundAddress, CoreError> {
        if self.bound.is_some() {
            return Err(CoreError::Io(std::io::Error::other("already bound")));
        }
        let on_loop = match options.io.as_str() {
            "loop" if cfg!(unix) => true,
            "loop" | "thread" => false,
            other => return Err(invalid(format!("io must be \"loop\" or \"thread\", got {other:?}"))),
        };
        let address = addr(&host, port)?;
        let on_events_raw = on_events.value().value;
        let source = Arc::new(OnceLock::new());
        let deliver = deliver::build(on_events, source.clone()).map_err(|e| invalid(e.reason))?;
        let opts = SocketOptions {
            endpoint: Config {
                max_body: options.max_body as usize,
                max_outstanding: options.max_outstanding as usize,
                check_sender: options.check_sender,
                per_source: match (options.rate_per_second, options.rate_burst, options.max_sources) {
                    (Some(requests_per_second), Some(burst), Some(max_sources)) => Some(RateConfig {
                        requests_per_second,
                        burst,
                        max_sources: max_sources as usize,
                    }),
                    _ => None,
                },
                reflection: match (
                    options.reflection_allowance,
                    options.reflection_factor,
                    options.reflection_max_sources,
                ) {
                    (Some(allowance), Some(factor), Some(max_sources)) => Some(ReflectionConfig {
                        allowance: allowance as u64,
                        factor,
                        max_sources: max_sources as usize,
                    }),
                    _ => None,
                },
                ..Config::default()
            },
            recv_buffer: options.recv_buffer as usize,
            send_buffer: options.send_buffer as usize,
        };
        let waker = JsWaker(deliver.clone());
        let socket = Arc::new(if on_loop {
            Socket::bind_external(address, opts, waker)?
        } else {
            Socket::bind(address, opts, waker)?
        });
        deliver::connect(&source, &socket);
        // SAFETY: on the JavaScript thread of `env`.
        let id = match unsafe { env_sockets::register(env.raw(), socket.clone()) } {
            Ok(id) => id,
            Err(e) => {
                socket.close();
                return Err(e);
            }
        };
        #[cfg(unix)]
        if on_loop {
            // SAFETY: on the JavaScript thread, with a function value of this env.
            if let Err(e) = unsafe { loop_io::start(env.raw(), id, on_events_raw, socket.clone()) } {
                env_sockets::take(id).map(env_sockets::close);
                return Err(e);
            }
        }
        let local = socket.local_addr();
        self.bound = Some(Bound {
            id,
            socket,
            deliver,
            on_loop,
        });
        self.set_referenced(env, true)?;
        Ok(BoundAddress {
            host: address::host(&local),
            port: local.port() as u32,
        })
    }

    fn socket(&self) -> std::result::Result<&Socket, CoreError> {
        self.bound.as_ref().map(|b| &*b.socket).ok_or(CoreError::Closed)
    }

    /// Runs one `queue_*` call; the datagram leaves now or is handed to the
    /// runtime thread, to leave after the next `commit()` (see turn.rs).
    fn queue<T>(
        &self,
        f: impl FnOnce(&Socket) -> std::result::Result<T, CoreError>,
    ) -> std::result::Result<T, CoreError> {
        let socket = self.socket()?;
        let out = f(socket)?;
        if turn::send_here() {
            socket.flush();
        } else {
            socket.hand_over();
        }
        Ok(out)
    }

    /// Starts a call (see `queue`); its answer, error reply or timeout comes back as an event carrying `token`.
    #[napi(catch_unwind)]
    pub fn call(
        &self,
        env: Env,
        host: String,
        port: f64,
        body: &[u8],
        len: f64,
        timeout_ms: f64,
        token: u32,
    ) -> Result<()> {
        (|| {
            let (dest, body, timeout) = (addr(&host, port)?, prefix(body, len)?, timeout(timeout_ms)?);
            self.queue(|s| s.queue_call(dest, body, timeout, token as u64))
        })()
        .map_err(|e| throw(&env, e))
    }

    #[napi(catch_unwind)]
    /// False when the reflection bound held the reply back (the core counts it as `unverified`).
    pub fn reply(&self, env: Env, id: &[u8], host: String, port: f64, body: &[u8], len: f64) -> Result<bool> {
        (|| {
            let (id, dest, body) = (msg_id(id)?, addr(&host, port)?, prefix(body, len)?);
            self.queue(|s| s.queue_reply(&id, dest, body))
        })()
        .map_err(|e| throw(&env, e))
    }

    #[napi(catch_unwind)]
    /// False as `reply`.
    pub fn reply_error(
        &self,
        env: Env,
        id: &[u8],
        host: String,
        port: f64,
        code: String,
        message: String,
    ) -> Result<bool> {
        (|| {
            let (id, dest) = (msg_id(id)?, addr(&host, port)?);
            self.queue(|s| s.queue_error(&id, dest, &code, &message))
        })()
        .map_err(|e| throw(&env, e))
    }

    /// Forgets the outstanding call `token` (aborted by its caller); false if it was not outstanding.
    #[napi(catch_unwind)]
    pub fn cancel(&self, env: Env, token: u32) -> Result<bool> {
        self.socket()
            .map(|s| s.cancel(token as u64))
            .map_err(|e| throw(&env, e))
    }

    #[napi(catch_unwind)]
    pub fn stats(&self, env: Env) -> Result<NativeStats> {
        let s = self.socket().map_err(|e| throw(&env, e))?.stats();
        let dropped = DropReason::ALL
            .iter()
            .map(|r| (r.js_name(), s.stats.dropped(*r) as f64))
            .collect();
        Ok(NativeStats {
            requests_sent: s.stats.requests_sent as f64,
            requests_received: s.stats.requests_received as f64,
            responses_sent: s.stats.responses_sent as f64,
            responses_received: s.stats.responses_received as f64,
            errors_sent: s.stats.errors_sent as f64,
            errors_received: s.stats.errors_received as f64,
            timeouts: s.stats.timeouts as f64,
            outstanding: s.outstanding as f64,
            dropped,
            recv_buffer_size: s.recv_buffer as f64,
            send_buffer_size: s.send_buffer as f64,
            table_bytes: s.table_bytes as f64,
            sources_tracked: s.sources_tracked as f64,
            reflection_sources: s.reflection_sources as f64,
        })
    }

    /// Like dgram's `ref()`: a referenced socket keeps the event loop alive.
    #[napi(js_name = "ref", catch_unwind)]
    pub fn refer(&mut self, env: Env) -> Result<()> {
        self.set_referenced(&env, true).map_err(|e| throw(&env, e))
    }

    #[napi(catch_unwind)]
    pub fn unref(&mut self, env: Env) -> Result<()> {
        self.set_referenced(&env, false).map_err(|e| throw(&env, e))
    }

    fn set_referenced(&mut self, env: &Env, on: bool) -> std::result::Result<(), CoreError> {
        let Some(bound) = &self.bound else { return Ok(()) };
        if self.referenced == on {
            return Ok(());
        }
        self.referenced = on;
        // On the loop, the poll handle is what keeps the process alive; the
        // threadsafe function (timeouts only) stays weak.
        #[cfg(unix)]
        if bound.on_loop {
            loop_io::set_referenced(bound.id, on);
            return Ok(());
        }
        // The function is shared with the driver's waker, so napi-rs's `&mut` refer/unref
        // cannot be used; these calls only touch the loop's refcount and are safe on the JS thread.
        // SAFETY: a live threadsafe function of this env, on its JavaScript thread.
        let status = unsafe {
            if on {
                napi::sys::napi_ref_threadsafe_function(env.raw(), bound.deliver.raw())
            } else {
                napi::sys::napi_unref_threadsafe_function(env.raw(), bound.deliver.raw())
            }
        };
        errors::napi_ok(status, "napi_(un)ref_threadsafe_function")
    }

    /// Stops the socket and lets go of everything it holds: the poll handle,
    /// the callback and (once the driver has stopped) the threadsafe function,
    /// so nothing of it keeps the process or the JavaScript callback alive.
    #[napi(catch_unwind)]
    pub fn close(&mut self, env: Env) -> Result<()> {
        self.set_referenced(&env, false).map_err(|e| throw(&env, e))?;
        self.release();
        Ok(())
    }

    fn release(&mut self) {
        let Some(bound) = self.bound.take() else { return };
        #[cfg(unix)]
        if bound.on_loop {
            loop_io::stop(bound.id);
        }
        // Not in the registry: torn down with its environment already.
        env_sockets::close(env_sockets::take(bound.id).unwrap_or(bound.socket));
    }
}

impl Drop for NativeSocket {
    /// Collected without close(): stop polling so libuv never calls into freed state.
    fn drop(&mut self) {
        self.release();
    }
}
