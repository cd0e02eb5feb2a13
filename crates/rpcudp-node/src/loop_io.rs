//! Receiving on Node's own event loop (the udx-native approach): libuv polls
//! each socket, and when one is readable the core reads and classifies a batch
//! of datagrams right here on the JavaScript thread, then hands the batch to
//! JavaScript. No thread is woken for a received datagram.
//!
//! Everything that does not belong to one socket is shared by all the sockets
//! of a JavaScript thread (an event loop): the receive buffers, the event log,
//! and the one buffer JavaScript reads batches from. A socket costs its uv_poll
//! handle and a reference to its callback, so hundreds stay cheap.
//!
//! Teardown: an environment that ends with sockets open (a Worker that exits
//! or is terminated) runs an async cleanup hook, which stops and closes every
//! handle while the environment is alive and holds the loop open until libuv
//! has called back for each; after that nothing of this module touches the
//! environment or the loop again.

use std::cell::RefCell;
use std::collections::HashMap;
use std::os::raw::{c_int, c_void};
use std::ptr;
use std::sync::Arc;

use napi::sys;
use rpcudp_core::batch_io::Inbox;
use rpcudp_core::events::EventBuf;
use rpcudp_core::socket::Socket;
use rpcudp_core::wire::MAX_DATAGRAM;
use rpcudp_core::Error as CoreError;

use crate::errors::{napi_ok, no_unwind};

// Node exports libuv's symbols to addons; these are resolved when the addon loads.
extern "C" {
    fn uv_handle_size(kind: c_int) -> usize;
    fn uv_poll_init_socket(lp: *mut sys::uv_loop_s, handle: *mut c_void, fd: c_int) -> c_int;
    fn uv_poll_start(handle: *mut c_void, events: c_int, cb: unsafe extern "C" fn(*mut c_void, c_int, c_int)) -> c_int;
    fn uv_poll_stop(handle: *mut c_void) -> c_int;
    fn uv_close(handle: *mut c_void, cb: unsafe extern "C" fn(*mut c_void));
    fn uv_ref(handle: *mut c_void);
    fn uv_unref(handle: *mut c_void);
}

const UV_POLL: c_int = 8; // uv_handle_type
const UV_READABLE: c_int = 1;
/// The shared batch buffer: room for any one event (the largest is a 64 KiB
/// datagram), so a larger batch is handed over in runs, never allocated.
const BATCH_BUFFER: usize = 256 << 10;

/// The loop-wide state of one JavaScript thread.
struct LoopShared {
    env: sys::napi_env,
    lp: *mut sys::uv_loop_s,
    /// The batch buffer: a reference keeps it (and so `data`) alive.
    buffer: sys::napi_ref,
    data: *mut u8,
    async_context: sys::napi_async_context,
    inbox: Inbox,
    events: EventBuf,
    receivers: HashMap<u64, Handle>,
    /// Handles closed whose close callback has not run yet.
    closing: usize,
    /// Set once the environment is being torn down: removed when `closing` reaches 0.
    teardown: sys::napi_async_cleanup_hook_handle,
    torn_down: bool,
}

thread_local! {
    static SHARED: RefCell<Option<LoopShared>> = const { RefCell::new(None) };
}

/// A uv_poll handle; `uv_handle_t.data` (its first field) points at its [`Receiver`].
#[derive(Clone, Copy)]
struct Handle(*mut c_void);

/// What one socket's poll callback needs.
struct Receiver {
    env: sys::napi_env,
    callback: sys::napi_ref,
    socket: Arc<Socket>,
}

fn handle_words() -> usize {
    // SAFETY: a pure libuv query.
    unsafe { uv_handle_size(UV_POLL) }.div_ceil(8)
}

impl LoopShared {
    /// # Safety
    /// On `env`'s JavaScript thread.
    unsafe fn create(env: sys::napi_env) -> Result<LoopShared, CoreError> {
        let mut lp = ptr::null_mut();
        napi_ok(sys::napi_get_uv_event_loop(env, &mut lp), "napi_get_uv_event_loop")?;
        let mut name = ptr::null_mut();
        napi_ok(
            sys::napi_create_string_utf8(env, c"rpcudp".as_ptr(), 6, &mut name),
            "napi_create_string_utf8",
        )?;
        let mut async_context = ptr::null_mut();
        napi_ok(
            sys::napi_async_init(env, ptr::null_mut(), name, &mut async_context),
            "napi_async_init",
        )?;
        let mut data = ptr::null_mut();
        let mut buffer = ptr::null_mut();
        let mut buffer_ref = ptr::null_mut();
        let made = napi_ok(
            sys::napi_create_buffer(env, BATCH_BUFFER, &mut data, &mut buffer),
            "napi_create_buffer",
        )
        .and_then(|_| {
            napi_ok(
                sys::napi_create_reference(env, buffer, 1, &mut buffer_ref),
                "napi_create_reference",
            )
        });
        let mut teardown = ptr::null_mut();
        let hooked = made.and_then(|_| {
            napi_ok(
                sys::napi_add_async_cleanup_hook(env, Some(on_env_teardown), ptr::null_mut(), &mut teardown),
                "napi_add_async_cleanup_hook",
            )
        });
        if let Err(e) = hooked {
            if !buffer_ref.is_null() {
                sys::napi_delete_reference(env, buffer_ref);
            }
            sys::napi_async_destroy(env, async_context);
            return Err(e);
        }
        Ok(LoopShared {
            env,
            lp,
            buffer: buffer_ref,
            data: data as *mut u8,
            async_context,
            // Zeroed, so the kernel maps pages only as datagrams land in them.
            inbox: Inbox::new(MAX_DATAGRAM + 1),
            events: EventBuf::default(),
            receivers: HashMap::new(),
            closing: 0,
            teardown: ptr::null_mut(),
            torn_down: false,
        })
    }

    /// Stops polling `h`, drops its callback reference now (the environment is
    /// alive here) and leaves freeing its memory to libuv's close callback.
    unsafe fn close(&mut self, h: Handle) {
        let receiver = &mut **(h.0 as *mut *mut Receiver);
        sys::napi_delete_reference(receiver.env, receiver.callback);
        receiver.callback = ptr::null_mut();
        uv_poll_stop(h.0);
        uv_close(h.0, on_closed);
        self.closing += 1;
    }
}

fn with_shared<R>(f: impl FnOnce(&mut LoopShared) -> R) -> Option<R> {
    SHARED
        .try_with(|s| s.try_borrow_mut().ok().and_then(|mut s| s.as_mut().map(f)))
        .ok()
        .flatten()
}

/// Starts polling `socket` on `env`'s loop as socket `id`; each batch goes to `callback(batch, length)`.
///
/// # Safety
/// `callback` must be a function value of `env`, and this must run on `env`'s thread.
pub(crate) unsafe fn start(
    env: sys::napi_env,
    id: u64,
    callback: sys::napi_value,
    socket: Arc<Socket>,
) -> Result<(), CoreError> {
    let fresh = SHARED.with(|s| s.borrow().as_ref().map_or(true, |s| s.env != env || s.torn_down));
    if fresh {
        let shared = LoopShared::create(env)?;
        SHARED.with(|s| *s.borrow_mut() = Some(shared));
    }
    let mut cb_ref = ptr::null_mut();
    napi_ok(
        sys::napi_create_reference(env, callback, 1, &mut cb_ref),
        "napi_create_reference",
    )?;
    let fd = socket.raw_fd();
    let receiver = Box::new(Receiver {
        env,
        callback: cb_ref,
        socket,
    });
    // u64 words keep the handle 8-byte aligned, as libuv's structs need.
    let words = handle_words();
    let raw = Box::into_raw(vec![0u64; words].into_boxed_slice()) as *mut c_void;
    let lp = with_shared(|s| s.lp).unwrap_or(ptr::null_mut());
    let init = if lp.is_null() {
        -1
    } else {
        uv_poll_init_socket(lp, raw, fd)
    };
    if init != 0 {
        drop(Box::from_raw(ptr::slice_from_raw_parts_mut(raw as *mut u64, words)));
        sys::napi_delete_reference(env, receiver.callback);
        return Err(CoreError::Io(std::io::Error::other(format!(
            "uv_poll_init_socket failed ({init})"
        ))));
    }
    *(raw as *mut *mut Receiver) = Box::into_raw(receiver);
    let h = Handle(raw);
    let started = uv_poll_start(raw, UV_READABLE, on_readable);
    with_shared(|s| {
        if started == 0 {
            s.receivers.insert(id, h);
        } else {
            // SAFETY: an initialised handle on this thread, closed once.
            unsafe { s.close(h) };
        }
    });
    if started != 0 {
        return Err(CoreError::Io(std::io::Error::other(format!(
            "uv_poll_start failed ({started})"
        ))));
    }
    Ok(())
}

/// Like dgram's ref/unref: a referenced handle keeps the event loop alive.
pub(crate) fn set_referenced(id: u64, on: bool) {
    with_shared(|s| {
        if let Some(h) = s.receivers.get(&id) {
            // SAFETY: a live handle, on the loop's thread.
            unsafe {
                if on {
                    uv_ref(h.0)
                } else {
                    uv_unref(h.0)
                }
            }
        }
    });
}

/// Stops socket `id`'s polling (a no-op once stopped, or after teardown).
pub(crate) fn stop(id: u64) {
    with_shared(|s| {
        if let Some(h) = s.receivers.remove(&id) {
            // SAFETY: a live handle, on the loop's thread, closed once (it left the map).
            unsafe { s.close(h) };
        }
    });
}

unsafe extern "C" fn on_env_teardown(handle: sys::napi_async_cleanup_hook_handle, _arg: *mut c_void) {
    no_unwind(|| {
        let finished = with_shared(|s| {
            for (_, h) in std::mem::take(&mut s.receivers) {
                // SAFETY: live handles on this thread, each closed once.
                unsafe { s.close(h) };
            }
            // SAFETY: the environment is alive during its cleanup hooks.
            unsafe {
                sys::napi_delete_reference(s.env, s.buffer);
                sys::napi_async_destroy(s.env, s.async_context);
            }
            s.torn_down = true;
            s.teardown = handle;
            s.closing == 0
        });
        if finished != Some(false) {
            sys::napi_remove_async_cleanup_hook(handle);
        }
    });
}

unsafe extern "C" fn on_closed(raw: *mut c_void) {
    no_unwind(|| {
        // SAFETY: `raw` is a handle made by `start`, closed once; nothing else points at it now.
        unsafe {
            drop(Box::from_raw(*(raw as *mut *mut Receiver)));
            drop(Box::from_raw(ptr::slice_from_raw_parts_mut(
                raw as *mut u64,
                handle_words(),
            )));
        }
        let done = with_shared(|s| {
            s.closing -= 1;
            (s.closing == 0 && !s.teardown.is_null()).then(|| std::mem::replace(&mut s.teardown, ptr::null_mut()))
        });
        if let Some(Some(teardown)) = done {
            // SAFETY: the handle our teardown hook was given, removed once.
            unsafe { sys::napi_remove_async_cleanup_hook(teardown) };
        }
    });
}

unsafe extern "C" fn on_readable(raw: *mut c_void, status: c_int, _events: c_int) {
    no_unwind(|| {
        // SAFETY: a live handle: libuv calls back only until uv_poll_stop.
        let receiver = unsafe { &**(raw as *mut *mut Receiver) };
        // Read into the shared log, then let go of the shared state before
        // calling JavaScript, which may open or close sockets.
        let taken = with_shared(|s| {
            s.events.clear();
            if status < 0 {
                // libuv has stopped this poll: say so rather than go deaf silently.
                s.events.push_socket_error(status);
            } else if !receiver.socket.receive(&mut s.inbox, &mut s.events) {
                return None;
            }
            Some((std::mem::take(&mut s.events), s.env, s.buffer, s.data, s.async_context))
        });
        let Some(Some((events, env, buffer, data, async_context))) = taken else {
            return;
        };
        for run in EventBuf::runs(events.bytes(), BATCH_BUFFER) {
            // SAFETY: on the loop's thread; `data` is the live batch buffer of BATCH_BUFFER bytes.
            unsafe { deliver(env, async_context, buffer, data, receiver.callback, run) };
        }
        with_shared(|s| s.events = events);
    });
}

/// Calls `callback(buffer, length)` with `run` copied into the shared batch
/// buffer. make_callback (not a plain call) so that promise reactions and
/// nextTicks run afterwards, as they do after any I/O callback.
unsafe fn deliver(
    env: sys::napi_env,
    async_context: sys::napi_async_context,
    buffer: sys::napi_ref,
    data: *mut u8,
    callback: sys::napi_ref,
    run: &[u8],
) {
    if callback.is_null() || run.len() > BATCH_BUFFER {
        return;
    }
    let mut scope = ptr::null_mut();
    if sys::napi_open_handle_scope(env, &mut scope) != sys::Status::napi_ok {
        return;
    }
    ptr::copy_nonoverlapping(run.as_ptr(), data, run.len());
    let mut argv = [ptr::null_mut(); 2];
    let mut func = ptr::null_mut();
    // make_callback needs an object receiver: the global, as for any I/O callback.
    let mut recv = ptr::null_mut();
    let mut result = ptr::null_mut();
    if sys::napi_get_reference_value(env, buffer, &mut argv[0]) == sys::Status::napi_ok
        && sys::napi_create_uint32(env, run.len() as u32, &mut argv[1]) == sys::Status::napi_ok
        && sys::napi_get_reference_value(env, callback, &mut func) == sys::Status::napi_ok
        && sys::napi_get_global(env, &mut recv) == sys::Status::napi_ok
    {
        let status = sys::napi_make_callback(env, async_context, recv, func, 2, argv.as_ptr(), &mut result);
        if status == sys::Status::napi_pending_exception {
            // Same as an exception thrown from any I/O callback: 'uncaughtException'.
            let mut exception = ptr::null_mut();
            sys::napi_get_and_clear_last_exception(env, &mut exception);
            sys::napi_fatal_exception(env, exception);
        }
    }
    sys::napi_close_handle_scope(env, scope);
}
