//! napi-rs binding of rpcudp-core: translation only. Events reach JavaScript
//! a whole batch per call: through one weak threadsafe function from the
//! runtime thread (`io: "thread"`), or straight from libuv's poll on the
//! JavaScript thread (`io: "loop"`, see uv_poll.rs), where only timeouts come
//! through the threadsafe function. Requests and replies are queued on the
//! JavaScript thread and leave with one sendmmsg per `flush()`.
#![deny(clippy::all)]

#[cfg(unix)]
mod uv_poll;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::JsValue;
use napi_derive::napi;
use rpcudp_core::endpoint::Config;
use rpcudp_core::limits::RateConfig;
use rpcudp_core::socket::{EventQueue, Socket, SocketOptions, Wake};
use rpcudp_core::stats::DropReason;
use rpcudp_core::wire::{MsgId, ID_LEN};

/// Weak (never keeps the process alive by itself); `ref()` makes it strong while listening.
type Deliver = ThreadsafeFunction<(), (), Buffer, Status, false, true>;

struct JsWaker(Arc<Deliver>);

impl Wake for JsWaker {
    fn wake(&self) {
        self.0.call((), ThreadsafeFunctionCallMode::NonBlocking);
    }
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
    /// Keyed by the camelCase drop reason.
    pub dropped: HashMap<String, f64>,
    pub recv_buffer_size: f64,
    pub send_buffer_size: f64,
    /// Heap bytes of the core's outstanding-call table (not in the JS heap; for benchmarks).
    pub table_bytes: f64,
    /// Sources the per-source rate limit tracks (bounded by maxSources).
    pub sources_tracked: f64,
}

#[napi]
pub struct NativeSocket {
    socket: Option<Arc<Socket>>,
    deliver: Option<Arc<Deliver>>,
    #[cfg(unix)]
    receiver: Option<uv_poll::LoopReceiver>,
    referenced: bool,
}

fn to_napi(e: rpcudp_core::Error) -> Error {
    Error::new(Status::GenericFailure, format!("{}: {}", e.code(), e))
}

fn addr(host: &str, port: u32) -> Result<SocketAddr> {
    let ip: IpAddr = host.parse().map_err(|_| {
        Error::new(
            Status::InvalidArg,
            format!("ERR_INVALID_ADDRESS: {host:?} is not an IP address"),
        )
    })?;
    let port =
        u16::try_from(port).map_err(|_| Error::new(Status::InvalidArg, format!("ERR_INVALID_ADDRESS: port {port}")))?;
    Ok(SocketAddr::new(ip, port))
}

/// The first `len` bytes of a reusable JavaScript encode buffer.
fn prefix(body: &[u8], len: u32) -> Result<&[u8]> {
    body.get(..len as usize)
        .ok_or_else(|| Error::new(Status::InvalidArg, "len is past the end of the body"))
}

fn msg_id(id: &[u8]) -> Result<MsgId> {
    id.try_into()
        .map_err(|_| Error::new(Status::InvalidArg, format!("message id must be {ID_LEN} bytes")))
}

fn camel(snake: &str) -> String {
    let mut out = String::with_capacity(snake.len());
    let mut upper = false;
    for c in snake.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

impl Default for NativeSocket {
    fn default() -> Self {
        Self::new()
    }
}

#[napi]
impl NativeSocket {
    #[napi(constructor)]
    pub fn new() -> Self {
        NativeSocket {
            socket: None,
            deliver: None,
            #[cfg(unix)]
            receiver: None,
            referenced: false,
        }
    }

    /// Binds and starts receiving; `onEvents(batch, length)` gets every batch of events (format in
    /// docs/DESIGN.md) in its first `length` bytes (all of it when `length` is absent). The buffer
    /// may be reused for the next batch: read it before returning.
    #[napi]
    pub fn bind(
        &mut self,
        env: Env,
        host: String,
        port: u32,
        options: BindOptions,
        #[napi(ts_arg_type = "(batch: Buffer, length?: number) => void")] on_events: Function<Buffer, ()>,
    ) -> Result<BoundAddress> {
        if self.socket.is_some() {
            return Err(Error::new(Status::GenericFailure, "ERR_IO: already bound"));
        }
        let on_events_raw = on_events.value().value;
        let queue: Arc<OnceLock<Arc<EventQueue>>> = Arc::new(OnceLock::new());
        let source = queue.clone();
        let deliver: Deliver = on_events
            .build_threadsafe_function::<()>()
            .weak::<true>()
            .callee_handled::<false>()
            .build_callback(move |_ctx| Ok(Buffer::from(source.get().map(|q| q.take()).unwrap_or_default())))?;
        let deliver = Arc::new(deliver);
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
                ..Config::default()
            },
            recv_buffer: options.recv_buffer as usize,
            send_buffer: options.send_buffer as usize,
        };
        let address = addr(&host, port)?;
        let waker = JsWaker(deliver.clone());
        let on_loop = match options.io.as_str() {
            "loop" => cfg!(unix),
            "thread" => false,
            other => {
                return Err(Error::new(
                    Status::InvalidArg,
                    format!("io must be \"loop\" or \"thread\", got {other:?}"),
                ))
            }
        };
        let socket = Arc::new(
            if on_loop {
                Socket::bind_external(address, opts, waker)
            } else {
                Socket::bind(address, opts, waker)
            }
            .map_err(to_napi)?,
        );
        let _ = queue.set(socket.events());
        #[cfg(unix)]
        if on_loop {
            // SAFETY: on the JavaScript thread, with a function value of this env.
            self.receiver = Some(unsafe { uv_poll::LoopReceiver::start(env.raw(), on_events_raw, socket.clone())? });
        }
        let local = socket.local_addr();
        self.socket = Some(socket);
        self.deliver = Some(deliver);
        self.set_referenced(&env, true)?;
        Ok(BoundAddress {
            host: local.ip().to_canonical().to_string(),
            port: local.port() as u32,
        })
    }

    fn socket(&self) -> Result<&Socket> {
        self.socket
            .as_deref()
            .ok_or_else(|| Error::new(Status::GenericFailure, "ERR_CLOSED: not bound"))
    }

    /// Queues a call; it leaves with the next `flush()` (one sendmmsg for everything queued).
    #[napi]
    pub fn call(&self, host: String, port: u32, body: &[u8], len: u32, timeout_ms: f64, token: u32) -> Result<()> {
        let timeout = Duration::from_secs_f64(timeout_ms.max(0.0) / 1000.0);
        self.socket()?
            .queue_call(addr(&host, port)?, prefix(body, len)?, timeout, token as u64)
            .map_err(to_napi)
    }

    #[napi]
    pub fn reply(&self, id: &[u8], host: String, port: u32, body: &[u8], len: u32) -> Result<()> {
        self.socket()?
            .queue_reply(&msg_id(id)?, addr(&host, port)?, prefix(body, len)?)
            .map_err(to_napi)
    }

    #[napi]
    pub fn reply_error(&self, id: &[u8], host: String, port: u32, code: String, message: String) -> Result<()> {
        self.socket()?
            .queue_error(&msg_id(id)?, addr(&host, port)?, &code, &message)
            .map_err(to_napi)
    }

    /// Forgets the outstanding call `token` (aborted by its caller); false if it was not outstanding.
    #[napi]
    pub fn cancel(&self, token: u32) -> Result<bool> {
        Ok(self.socket()?.cancel(token as u64))
    }

    #[napi]
    pub fn flush(&self) -> Result<()> {
        self.socket()?.flush();
        Ok(())
    }

    #[napi]
    pub fn stats(&self) -> Result<NativeStats> {
        let s = self.socket()?.stats();
        let dropped = DropReason::ALL
            .iter()
            .map(|r| (camel(r.as_str()), s.stats.dropped(*r) as f64))
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
        })
    }

    /// Like dgram's `ref()`: a referenced socket keeps the event loop alive.
    #[napi(js_name = "ref")]
    pub fn refer(&mut self, env: Env) -> Result<()> {
        self.set_referenced(&env, true)
    }

    #[napi]
    pub fn unref(&mut self, env: Env) -> Result<()> {
        self.set_referenced(&env, false)
    }

    fn set_referenced(&mut self, env: &Env, on: bool) -> Result<()> {
        let Some(deliver) = &self.deliver else { return Ok(()) };
        if self.referenced == on {
            return Ok(());
        }
        self.referenced = on;
        // On the loop, the poll handle is what keeps the process alive; the
        // threadsafe function (timeouts only) stays weak.
        #[cfg(unix)]
        if let Some(receiver) = &self.receiver {
            receiver.set_referenced(on);
            return Ok(());
        }
        // The function is shared with the driver's waker, so napi-rs's `&mut` refer/unref
        // cannot be used; these calls only touch the loop's refcount and are safe on the JS thread.
        let status = unsafe {
            if on {
                napi::sys::napi_ref_threadsafe_function(env.raw(), deliver.raw())
            } else {
                napi::sys::napi_unref_threadsafe_function(env.raw(), deliver.raw())
            }
        };
        if status != napi::sys::Status::napi_ok {
            return Err(Error::new(
                Status::GenericFailure,
                format!("ERR_IO: (un)ref failed with status {status}"),
            ));
        }
        Ok(())
    }

    /// Stops the socket. Its threadsafe function is released, so nothing of it keeps the process alive.
    #[napi]
    pub fn close(&mut self, env: Env) -> Result<()> {
        self.set_referenced(&env, false)?;
        #[cfg(unix)]
        if let Some(receiver) = self.receiver.take() {
            receiver.close();
        }
        if let Some(socket) = self.socket.take() {
            socket.flush();
            socket.close();
        }
        self.deliver = None;
        Ok(())
    }
}

impl Drop for NativeSocket {
    /// Collected without close(): stop polling so libuv never calls into freed state.
    fn drop(&mut self) {
        #[cfg(unix)]
        if let Some(receiver) = self.receiver.take() {
            receiver.close();
        }
        if let Some(socket) = self.socket.take() {
            socket.close();
        }
    }
}
