//! Receiving on Node's own event loop (the udx-native approach): libuv polls the
//! socket, and when it is readable the core reads and classifies a batch of
//! datagrams right here on the JavaScript thread, then hands the batch to
//! JavaScript with one call. No thread is woken for a received datagram, and
//! nothing is allocated per batch: it is copied into one buffer JavaScript owns
//! (as udx-native does), which JavaScript reads before the call returns.

use std::os::raw::{c_int, c_void};
use std::ptr;
use std::sync::Arc;

use napi::sys;
use rpcudp_core::batch_io::Inbox;
use rpcudp_core::events::EventBuf;
use rpcudp_core::socket::Socket;
use rpcudp_core::wire::MAX_DATAGRAM;

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
/// Room for a typical batch; a larger one (up to 8 × 32 datagrams) gets a buffer of its own.
const BATCH_BUFFER: usize = 1 << 20;

/// Everything the poll callback needs; `uv_handle_t.data` (its first field) points here.
struct Receiver {
    env: sys::napi_env,
    callback: sys::napi_ref,
    /// The reusable batch buffer: a reference keeps it (and so `data`) alive.
    buffer: sys::napi_ref,
    data: *mut u8,
    async_context: sys::napi_async_context,
    socket: Arc<Socket>,
    inbox: Inbox,
    events: EventBuf,
}

/// A started uv_poll handle; `close` must run on the JavaScript thread.
pub struct LoopReceiver {
    handle: *mut c_void,
}

fn check(status: sys::napi_status, what: &str) -> napi::Result<()> {
    if status == sys::Status::napi_ok {
        Ok(())
    } else {
        Err(napi::Error::new(
            napi::Status::GenericFailure,
            format!("ERR_IO: {what} failed ({status})"),
        ))
    }
}

impl LoopReceiver {
    /// Starts polling `socket` on `env`'s loop; each batch goes to `callback(batch)`.
    ///
    /// # Safety
    /// `callback` must be a function value valid in `env`, and this must run on `env`'s thread.
    pub unsafe fn start(env: sys::napi_env, callback: sys::napi_value, socket: Arc<Socket>) -> napi::Result<Self> {
        let mut lp = ptr::null_mut();
        check(sys::napi_get_uv_event_loop(env, &mut lp), "napi_get_uv_event_loop")?;
        let mut cb_ref = ptr::null_mut();
        check(
            sys::napi_create_reference(env, callback, 1, &mut cb_ref),
            "napi_create_reference",
        )?;
        let mut name = ptr::null_mut();
        check(
            sys::napi_create_string_utf8(env, c"rpcudp".as_ptr(), 6, &mut name),
            "napi_create_string_utf8",
        )?;
        let mut async_context = ptr::null_mut();
        check(
            sys::napi_async_init(env, ptr::null_mut(), name, &mut async_context),
            "napi_async_init",
        )?;
        let mut data = ptr::null_mut();
        let mut buffer = ptr::null_mut();
        check(
            sys::napi_create_buffer(env, BATCH_BUFFER, &mut data, &mut buffer),
            "napi_create_buffer",
        )?;
        let mut buffer_ref = ptr::null_mut();
        check(
            sys::napi_create_reference(env, buffer, 1, &mut buffer_ref),
            "napi_create_reference",
        )?;

        let fd = socket.raw_fd();
        let receiver = Box::new(Receiver {
            env,
            callback: cb_ref,
            buffer: buffer_ref,
            data: data as *mut u8,
            async_context,
            socket,
            inbox: Inbox::new(MAX_DATAGRAM + 1),
            events: EventBuf::default(),
        });
        // u64 words keep the handle 8-byte aligned, as libuv's structs need.
        let words = uv_handle_size(UV_POLL).div_ceil(8);
        let handle = Box::into_raw(vec![0u64; words].into_boxed_slice()) as *mut c_void;
        let rc = uv_poll_init_socket(lp, handle, fd);
        if rc != 0 {
            drop(Box::from_raw(std::ptr::slice_from_raw_parts_mut(
                handle as *mut u64,
                words,
            )));
            release(*receiver);
            return Err(napi::Error::new(
                napi::Status::GenericFailure,
                format!("ERR_IO: uv_poll_init_socket failed ({rc})"),
            ));
        }
        *(handle as *mut *mut Receiver) = Box::into_raw(receiver);
        uv_poll_start(handle, UV_READABLE, on_readable);
        Ok(LoopReceiver { handle })
    }

    /// Like dgram's ref/unref: a referenced handle keeps the event loop alive.
    pub fn set_referenced(&self, on: bool) {
        // SAFETY: a live handle, on the loop's thread.
        unsafe {
            if on {
                uv_ref(self.handle)
            } else {
                uv_unref(self.handle)
            }
        }
    }

    /// Stops polling; the handle and its state are freed once libuv has closed it.
    pub fn close(self) {
        // SAFETY: a live handle, on the loop's thread; `on_closed` frees it exactly once.
        unsafe {
            uv_poll_stop(self.handle);
            uv_close(self.handle, on_closed);
        }
    }
}

unsafe fn release(receiver: Receiver) {
    sys::napi_delete_reference(receiver.env, receiver.callback);
    sys::napi_delete_reference(receiver.env, receiver.buffer);
    sys::napi_async_destroy(receiver.env, receiver.async_context);
}

unsafe extern "C" fn on_closed(handle: *mut c_void) {
    let receiver = Box::from_raw(*(handle as *mut *mut Receiver));
    release(*receiver);
    let words = uv_handle_size(UV_POLL).div_ceil(8);
    drop(Box::from_raw(std::ptr::slice_from_raw_parts_mut(
        handle as *mut u64,
        words,
    )));
}

unsafe extern "C" fn on_readable(handle: *mut c_void, status: c_int, _events: c_int) {
    let r = &mut **(handle as *mut *mut Receiver);
    if status < 0 {
        return;
    }
    r.events.clear();
    if r.socket.receive(&mut r.inbox, &mut r.events) {
        deliver(r);
    }
}

/// Calls `callback(buffer, length)` with the batch copied into the reusable
/// buffer (or, if it does not fit, into a new one). make_callback (not a plain
/// call) so that promise reactions and nextTicks run afterwards, as they do
/// after any I/O callback.
unsafe fn deliver(r: &Receiver) {
    let env = r.env;
    let mut scope = ptr::null_mut();
    if sys::napi_open_handle_scope(env, &mut scope) != sys::Status::napi_ok {
        return;
    }
    let bytes = r.events.bytes();
    let mut argv = [ptr::null_mut(); 2];
    let buffer_ok = if bytes.len() <= BATCH_BUFFER {
        ptr::copy_nonoverlapping(bytes.as_ptr(), r.data, bytes.len());
        sys::napi_get_reference_value(env, r.buffer, &mut argv[0]) == sys::Status::napi_ok
    } else {
        let mut data = ptr::null_mut();
        sys::napi_create_buffer_copy(
            env,
            bytes.len(),
            bytes.as_ptr() as *const c_void,
            &mut data,
            &mut argv[0],
        ) == sys::Status::napi_ok
    };
    let mut func = ptr::null_mut();
    // make_callback needs an object receiver: the global, as for any I/O callback.
    let mut recv = ptr::null_mut();
    let mut result = ptr::null_mut();
    if buffer_ok
        && sys::napi_create_uint32(env, bytes.len() as u32, &mut argv[1]) == sys::Status::napi_ok
        && sys::napi_get_reference_value(env, r.callback, &mut func) == sys::Status::napi_ok
        && sys::napi_get_global(env, &mut recv) == sys::Status::napi_ok
    {
        let status = sys::napi_make_callback(env, r.async_context, recv, func, 2, argv.as_ptr(), &mut result);
        if status == sys::Status::napi_pending_exception {
            // Same as an exception thrown from any I/O callback: 'uncaughtException'.
            let mut exception = ptr::null_mut();
            sys::napi_get_and_clear_last_exception(env, &mut exception);
            sys::napi_fatal_exception(env, exception);
        }
    }
    sys::napi_close_handle_scope(env, scope);
}
